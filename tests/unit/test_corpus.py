"""Playlist corpora (MPD slices, folders, JSONL, errors), the pid split, the relevance metrics
of `loadtest.bench quality` and the song key that spots repeats."""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import xxhash

from loadtest.quality.metrics import hit_vector, ndcg_at, r_precision, recall_at, title_kind
from models.corpus import (
    CorpusPlaylist,
    in_split,
    iter_playlists,
    load_playlists,
    split_of,
)
from models.errors import CorpusError, ModelError
from models.intent import Slots
from models.songs import song_key


def _mpd(pid: int, name: str, ids: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "pid": pid,
        "num_followers": 3,
        "modified_at": 1500000000,
        "collaborative": "false",
        "tracks": [
            {
                "pos": i,
                "track_uri": f"spotify:track:{t}",
                "artist_name": "A",
                "track_name": "T",
                "album_name": "B",
                "duration_ms": 1000,
            }
            for i, t in enumerate(ids)
        ],
        **extra,
    }


def _slice(path: Path, playlists: list[dict[str, Any]]) -> Path:
    body = json.dumps({"info": {"slice": "0-1"}, "playlists": playlists}).encode()
    path.write_bytes(gzip.compress(body) if path.name.endswith(".gz") else body)
    return path


def test_mpd_slice_loads_ids_without_the_uri_prefix(tmp_path: Path) -> None:
    """A slice's playlists keep pid, name, followers and bare track ids, in order."""
    path = _slice(tmp_path / "s.json", [_mpd(7, "Chill", ["4uLU6hMCjMI75M1A2tKUQC", "b2"])])
    assert load_playlists(path) == [
        CorpusPlaylist(7, "Chill", ("4uLU6hMCjMI75M1A2tKUQC", "b2"), num_followers=3)
    ]


def test_gzipped_slice_and_sparse_playlists_load(tmp_path: Path) -> None:
    """`.json.gz` reads the same; tracks need only a URI and followers may be missing."""
    sparse = {"name": "x", "pid": 1, "tracks": [{"track_uri": "spotify:track:a1"}]}
    path = _slice(tmp_path / "s.json.gz", [sparse])
    assert load_playlists(path) == [CorpusPlaylist(1, "x", ("a1",), num_followers=0)]


def test_folder_reads_its_slices_in_sorted_order(tmp_path: Path) -> None:
    """A folder is its `*.json`/`*.json.gz` slices sorted by name; other files are ignored."""
    _slice(tmp_path / "mpd.slice.1000-1999.json.gz", [_mpd(1000, "b", ["t2"])])
    _slice(tmp_path / "mpd.slice.0-999.json", [_mpd(0, "a", ["t1"])])
    (tmp_path / "README.md").write_text("not a slice")
    assert [p.pid for p in load_playlists(tmp_path)] == [0, 1000]


def test_jsonl_takes_ids_or_uris_and_numbers_lines_without_pid(tmp_path: Path) -> None:
    """JSONL lines hold ids or URIs; a line without a pid is named by its line number."""
    path = tmp_path / "c.jsonl"
    path.write_text(
        json.dumps({"name": "gym", "tracks": ["t1", "spotify:track:t2"]})
        + "\n\n"
        + json.dumps({"name": "run", "tracks": [], "pid": 99})
        + "\n"
    )
    assert load_playlists([path]) == [
        CorpusPlaylist(1, "gym", ("t1", "t2")),
        CorpusPlaylist(99, "run", ()),
    ]


def test_several_paths_chain_and_iterate_lazily(tmp_path: Path) -> None:
    """Paths are read in the order given; `iter_playlists` yields the same playlists."""
    first = _slice(tmp_path / "a.json", [_mpd(5, "a", ["t1"])])
    second = tmp_path / "b.jsonl.gz"
    second.write_bytes(gzip.compress(b'{"name": "b", "tracks": ["t2"], "pid": 6}\n'))
    assert [p.pid for p in iter_playlists([first, second])] == [5, 6]
    assert load_playlists([str(first), second]) == list(iter_playlists([first, second]))


@pytest.mark.parametrize(
    ("playlist", "where"),
    [
        ({"pid": 1, "tracks": []}, "playlist 1 (pid 1)"),  # no name
        ({"name": "x", "pid": 1}, "playlist 1 (pid 1)"),  # no tracks
        ({"name": 5, "pid": 1, "tracks": []}, "playlist 1 (pid 1)"),  # name not a string
        ({"name": "x", "pid": "1", "tracks": []}, "playlist 1"),  # pid not an int
        ({"name": "x", "pid": 1, "tracks": "t1"}, "playlist 1 (pid 1)"),
        ({"name": "x", "pid": 1, "tracks": [{"track_uri": "spotify:album:a"}]}, "pid 1"),
        ({"name": "x", "pid": 1, "tracks": [{"track_uri": "t1"}]}, "pid 1"),
        ({"name": "x", "pid": 1, "tracks": [{"uri": "spotify:track:a"}]}, "pid 1"),
    ],
)
def test_malformed_slice_playlists_name_file_and_playlist(
    tmp_path: Path, playlist: dict[str, Any], where: str
) -> None:
    """Missing or mistyped fields and bad URIs raise CorpusError naming file and playlist."""
    path = _slice(tmp_path / "bad.json", [_mpd(0, "ok", ["t1"]), playlist])
    with pytest.raises(CorpusError) as caught:
        load_playlists(path)
    assert str(path) in str(caught.value)
    assert where in str(caught.value)
    assert isinstance(caught.value, ModelError)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"playlists": {}}', b'{"info": {}}', b"\x00\x01"],
)
def test_a_file_that_is_no_slice_is_refused(tmp_path: Path, body: bytes) -> None:
    """Broken JSON or the wrong top-level shape is a CorpusError, never a bare decode error."""
    path = tmp_path / "bad.json"
    path.write_bytes(body)
    with pytest.raises(CorpusError, match=r"bad\.json"):
        load_playlists(path)


@pytest.mark.parametrize(
    "line",
    [
        "{oops",
        '{"tracks": ["t1"]}',
        '{"name": "x"}',
        '{"name": "x", "tracks": [1]}',
        '{"name": "x", "tracks": ["spotify:album:a"]}',
        '{"name": "x", "tracks": ["has space"]}',
        '{"name": "x", "tracks": [], "pid": 1.5}',
        '["x", []]',
    ],
)
def test_malformed_jsonl_lines_name_file_and_line(tmp_path: Path, line: str) -> None:
    """A bad JSONL line raises CorpusError with the file and its line number."""
    path = tmp_path / "c.jsonl"
    path.write_text('{"name": "ok", "tracks": ["t1"]}\n' + line + "\n")
    with pytest.raises(CorpusError, match=r"c\.jsonl: line 2"):
        load_playlists(path)


def test_unreadable_sources_are_corpus_errors(tmp_path: Path) -> None:
    """A missing path, an empty folder, an unknown suffix and a broken gzip are refused."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "c.csv").write_text("name,tracks\n")
    (tmp_path / "c.json.gz").write_bytes(b"not gzip")
    for path in ("missing.json", "empty", "c.csv", "c.json.gz"):
        with pytest.raises(CorpusError, match=path.split(".")[0]):
            load_playlists(tmp_path / path)


def test_a_pid_seen_twice_is_refused(tmp_path: Path) -> None:
    """Two playlists with one pid (e.g. two JSONL files without pids) are refused."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"name": "x", "tracks": []}\n')
    b.write_text('{"name": "y", "tracks": []}\n')
    with pytest.raises(CorpusError, match="pid 1 appears twice"):
        load_playlists([a, b])


def test_split_of_is_the_documented_hash_rule() -> None:
    """split_of is the pid's xxh3 bucket: the same answer on every run, machine and corpus."""
    for pid in range(200):
        bucket = xxhash.xxh3_64_intdigest(f"mpd:{pid}".encode()) % 100
        expected = "test" if bucket < 50 else "validation" if bucket < 60 else "train"
        assert split_of(pid) == expected


def test_split_proportions_are_half_tenth_and_forty_percent() -> None:
    """Over 20,000 pids: ~50 % test, ~10 % validation, ~40 % train."""
    counts = Counter(split_of(pid) for pid in range(20_000))
    assert abs(counts["test"] / 20_000 - 0.5) < 0.015
    assert abs(counts["validation"] / 20_000 - 0.1) < 0.01
    assert abs(counts["train"] / 20_000 - 0.4) < 0.015


def test_in_split_selects_and_train_plus_validation_is_a_union() -> None:
    """Each playlist lands in exactly one split; train+validation is their union."""
    playlists = [CorpusPlaylist(pid, f"p{pid}", ()) for pid in range(500)]
    parts = {s: in_split(playlists, s) for s in ("train", "validation", "test")}
    assert sum(len(p) for p in parts.values()) == len(playlists)
    assert all(split_of(p.pid) == s for s, part in parts.items() for p in part)
    both = in_split(playlists, "train+validation")
    assert sorted(p.pid for p in both) == sorted(
        p.pid for p in parts["train"] + parts["validation"]
    )


# --- metrics (hand-computed) ---------------------------------------------------------------


def test_recall_counts_each_relevant_track_once() -> None:
    """recall@n = |G ∩ R[:n]| / |G|; a repeated hit counts once."""
    truth = {"a", "b", "c", "d"}
    ranking = ["x", "a", "a", "y", "b", "c"]
    assert recall_at(ranking, truth, 1) == 0.0
    assert recall_at(ranking, truth, 3) == 0.25
    assert recall_at(ranking, truth, 6) == 0.75
    assert recall_at(ranking, truth, 50) == 0.75  # a short ranking is padded with misses
    assert list(hit_vector(ranking, truth, 4)) == [0.0, 1.0, 0.0, 0.0]


def test_r_precision_looks_at_the_first_len_g_tracks() -> None:
    """R-precision = |G ∩ R[:|G|]| / |G|."""
    assert r_precision(["a", "x", "b", "c"], {"a", "b", "c"}) == pytest.approx(2 / 3)
    assert r_precision(["x", "y"], {"a"}) == 0.0
    assert r_precision(["a"], {"a"}) == 1.0


def test_ndcg_with_binary_relevance() -> None:
    """DCG = Σ rel_i / log2(i + 1); IDCG over min(|G|, n) ideal hits."""
    # G = {a, b}, R = [x, a, y, b], n = 4: DCG = 1/log2(3) + 1/log2(5), IDCG = 1 + 1/log2(3).
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3))
    assert ndcg_at(["x", "a", "y", "b"], {"a", "b"}, 4) == pytest.approx(expected)
    # More relevant tracks than n: IDCG stops at n, so a perfect top-2 scores 1.
    assert ndcg_at(["a", "b", "x"], {"a", "b", "c", "d"}, 2) == pytest.approx(1.0)
    assert ndcg_at(["x", "y"], {"a"}, 2) == 0.0


def test_title_kind_prefers_artist_then_genre_mood_activity_era() -> None:
    """A title's kind is its first non-empty slot in that order; unparsed titles are other."""
    assert title_kind(Slots(artists=("drake",), genres=("rap",))) == "artist"
    assert title_kind(Slots(genres=("jazz",), moods=("calm",))) == "genre"
    assert title_kind(Slots(moods=("calm",), era=(1980, 1989))) == "mood"
    assert title_kind(Slots(activities=("workout",))) == "activity"
    assert title_kind(Slots(era=(2010, 2019))) == "era"
    assert title_kind(Slots(explicit=False)) == "other"
    assert title_kind(None) == "other"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("Hey Jude", "The Beatles"), ("Hey Jude - Remastered 2015", "The Beatles")),
        (("Bohemian Rhapsody", "Queen"), ("Bohemian Rhapsody - 2011 Remaster", "queen")),
        (("Into You", "Fabolous"), ("Into You (feat. Ashanti)", "Fabolous")),
        (("Into You", "Fabolous"), ("Into You - feat. Ashanti", "Fabolous")),
        (("Titanium", "David Guetta"), ("Titanium - Alesso Remix", "David Guetta")),
        (("Levels", "Avicii"), ("Levels - Radio Edit", "Avicii")),
        (("Levels", "Avicii"), ("Levels- Radio Edit", "Avicii")),
        (("Creep", "Radiohead"), ("Creep - Live at Glastonbury", "Radiohead")),
        (("Don't Stop Me Now", "Queen"), ("Dont Stop Me Now!", "Queen")),
        (("Señorita", "Shawn Mendes"), ("Senorita", "Shawn Mendes")),
    ],
)
def test_song_key_folds_versions_of_one_song(a: tuple[str, str], b: tuple[str, str]) -> None:
    """Remasters, remixes, feature credits, live takes and punctuation share one key."""
    assert song_key(*a) == song_key(*b)


def test_song_key_keeps_different_songs_apart() -> None:
    """Other artists, other titles and plain dash tails stay distinct."""
    assert song_key("Hey Jude", "The Beatles") != song_key("Hey Jude", "Wilson Pickett")
    assert song_key("Part 1", "X") != song_key("Part 2", "X")
    assert song_key("Song - Part 2", "X") != song_key("Song", "X")
    assert song_key("Live Forever", "Oasis") != song_key("Forever", "Oasis")
