"""Synthetic playlist corpora: MPD slice format, determinism, titles that fit their tracks."""

from __future__ import annotations

import gzip
import itertools
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models import vocab
from models.__main__ import main
from models.artifacts import BuildSettings
from models.catalog import Catalog
from models.synth_playlists import synthetic_playlists, write_slices
from models.synthetic import synthetic_catalog

N_PLAYLISTS = 200
PLAYLIST_KEYS = {
    "name",
    "collaborative",
    "pid",
    "modified_at",
    "num_tracks",
    "num_followers",
    "tracks",
}
TRACK_KEYS = {"pos", "artist_name", "track_uri", "track_name", "duration_ms", "album_name"}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return synthetic_catalog(2000, seed=5)


@pytest.fixture(scope="module")
def playlists(catalog: Catalog) -> list[dict[str, Any]]:
    return list(synthetic_playlists(catalog, N_PLAYLISTS, seed=3))


def _rows(catalog: Catalog) -> dict[str, int]:
    ids = catalog.id_strings.get(np.arange(len(catalog)))
    return {f"spotify:track:{track_id}": row for row, track_id in enumerate(ids)}


def _genre_named(title: str, genres: tuple[str, ...]) -> str | None:
    """The genre a title names, by its longest spelling in it ("k pop" is k-pop, not pop)."""
    spellings = {g: g for g in genres} | {
        alias: g for alias, g in vocab.GENRE_ALIASES.items() if g in genres
    }
    found = [s for s in spellings if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", title.casefold())]
    return spellings[max(found, key=len)] if found else None


def _read_folder(folder: Path) -> list[dict[str, Any]]:
    files = sorted(
        folder.glob("mpd.slice.*.json"), key=lambda p: int(p.name.split(".")[2].split("-")[0])
    )
    return [p for f in files for p in json.loads(f.read_bytes())["playlists"]]


def test_folder_holds_valid_mpd_slices(catalog: Catalog, tmp_path: Path) -> None:
    """Each slice file is MPD JSON named by its pid span, and every track is in the catalog."""
    report = write_slices(synthetic_playlists(catalog, N_PLAYLISTS, seed=3), tmp_path, 64)
    names = [f.name for f in report.files]
    assert names == [f"mpd.slice.{a}-{min(a + 63, 199)}.json" for a in range(0, 200, 64)]
    known = _rows(catalog)
    pids = []
    for file in report.files:
        data = json.loads(file.read_bytes())
        assert data["info"]["slice"] == file.name.removeprefix("mpd.slice.").removesuffix(".json")
        assert data["info"]["version"] == "synthetic"
        assert isinstance(data["info"]["generated_on"], str)
        for playlist in data["playlists"]:
            pids.append(playlist["pid"])
            assert set(playlist) == PLAYLIST_KEYS
            assert playlist["collaborative"] == "false"
            assert playlist["num_tracks"] == len(playlist["tracks"])
            assert 5 <= playlist["num_tracks"] <= 250
            assert playlist["name"].strip()
            assert [t["pos"] for t in playlist["tracks"]] == list(range(playlist["num_tracks"]))
            uris = [t["track_uri"] for t in playlist["tracks"]]
            assert len(set(uris)) == len(uris)
            for track in playlist["tracks"]:
                assert set(track) == TRACK_KEYS
                assert track["track_uri"] in known
    assert pids == list(range(N_PLAYLISTS))
    assert report.playlists == N_PLAYLISTS


def test_lengths_vary_like_the_mpd(playlists: list[dict[str, Any]]) -> None:
    """Lengths spread from short to long around a median near the MPD's (~49)."""
    lengths = np.array([p["num_tracks"] for p in playlists])
    assert lengths.min() < 15
    assert lengths.max() > 150
    assert 35 <= np.median(lengths) <= 70


def test_same_seed_same_bytes_other_seed_other_bytes(catalog: Catalog, tmp_path: Path) -> None:
    """A (catalog, n, seed) always writes the same bytes; another seed writes others."""
    outs = [tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"]
    for out, seed in zip(outs, (3, 3, 4), strict=True):
        write_slices(synthetic_playlists(catalog, N_PLAYLISTS, seed), out)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].read_bytes() != outs[2].read_bytes()


def test_slice_size_does_not_change_the_playlists(catalog: Catalog, tmp_path: Path) -> None:
    """The playlists are the same whether written in slices of 50 or of 1,000."""
    write_slices(synthetic_playlists(catalog, N_PLAYLISTS, 3), tmp_path / "small", 50)
    write_slices(synthetic_playlists(catalog, N_PLAYLISTS, 3), tmp_path / "large", 1000)
    assert _read_folder(tmp_path / "small") == _read_folder(tmp_path / "large")


def test_single_files_hold_the_whole_corpus(
    catalog: Catalog, playlists: list[dict[str, Any]], tmp_path: Path
) -> None:
    """A .json or .json.gz out is one MPD slice spanning every pid, with the same playlists."""
    plain, packed = tmp_path / "corpus.json", tmp_path / "corpus.json.gz"
    write_slices(synthetic_playlists(catalog, N_PLAYLISTS, 3), plain, 64)
    write_slices(synthetic_playlists(catalog, N_PLAYLISTS, 3), packed, 64)
    with gzip.open(packed, "rb") as handle:
        unpacked = handle.read()
    assert unpacked == plain.read_bytes()
    data = json.loads(unpacked)
    assert data["info"]["slice"] == f"0-{N_PLAYLISTS - 1}"
    assert data["playlists"] == playlists


def test_rewriting_a_folder_drops_its_older_slices(catalog: Catalog, tmp_path: Path) -> None:
    """A smaller corpus written over a larger one leaves no slice of the larger behind."""
    write_slices(synthetic_playlists(catalog, N_PLAYLISTS, 3), tmp_path, 50)
    (tmp_path / "notes.txt").write_text("kept")
    write_slices(synthetic_playlists(catalog, 60, 3), tmp_path, 50)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "mpd.slice.0-49.json",
        "mpd.slice.50-59.json",
        "notes.txt",
    ]


def test_playlists_are_made_as_they_are_read(catalog: Catalog) -> None:
    """A billion-playlist corpus yields its first playlists without making the rest."""
    first = list(itertools.islice(synthetic_playlists(catalog, 10**9, 3), 3))
    assert [p["pid"] for p in first] == [0, 1, 2]


def test_titles_naming_a_genre_hold_mostly_that_genre(
    catalog: Catalog, playlists: list[dict[str, Any]]
) -> None:
    """Playlists whose title names a genre are mostly tracks of it, far above its base rate."""
    rows = _rows(catalog)
    shares, base = [], []
    for playlist in playlists:
        genre = _genre_named(playlist["name"], catalog.genre_names)
        if genre is None:
            continue
        mask = catalog.has_genre(genre)
        shares.append(mask[[rows[t["track_uri"]] for t in playlist["tracks"]]].mean())
        base.append(mask.mean())
    assert len(shares) >= 30
    assert np.mean(shares) >= 0.6
    assert np.mean(shares) >= 5 * np.mean(base)


def test_titles_name_their_theme_often_but_not_always(
    catalog: Catalog, playlists: list[dict[str, Any]]
) -> None:
    """Titles name a genre, mood, activity, era or artist most of the time, and some do not."""
    words = {w for v in (*vocab.MOODS, *vocab.ACTIVITIES) for w in v.words}
    artists = {a.casefold() for a in catalog.artists.get(np.arange(len(catalog)))}

    def named(title: str) -> bool:
        text = title.casefold()
        return (
            _genre_named(text, catalog.genre_names) is not None
            or any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", text) for w in words)
            or re.search(r"\d\d", text) is not None
            or any(a in text for a in artists)
        )

    themed = sum(named(p["name"]) for p in playlists)
    assert 0.6 * N_PLAYLISTS <= themed < N_PLAYLISTS


def test_titles_are_written_as_people_write_them(playlists: list[dict[str, Any]]) -> None:
    """Casing varies and some titles carry emoji; titles stay short."""
    titles = [p["name"] for p in playlists]
    assert any(t == t.lower() and t != t.upper() for t in titles)
    assert any(t == t.upper() and t != t.lower() for t in titles)
    assert any(not t.isascii() for t in titles)
    assert max(len(t.split()) for t in titles) <= 8


def test_cli_writes_a_corpus_from_a_synthetic_catalog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`synth-playlists --catalog synthetic:N` writes the slices and says what it wrote."""
    out = tmp_path / "mpd"
    argv = ["synth-playlists", "--catalog", "synthetic:2000", "--playlists", "150"]
    code = main([*argv, "--seed", "5", "--out", str(out), "--quiet"])
    assert code == 0
    assert [f.name for f in sorted(out.iterdir())] == ["mpd.slice.0-149.json"]
    assert len(_read_folder(out)) == 150
    assert "wrote 150 playlists" in capsys.readouterr().out
    # Over the catalog `models build --catalog synthetic:2000` makes, whatever the seed.
    built = synthetic_catalog(2000, seed=BuildSettings().seed)
    expected = [p["name"] for p in synthetic_playlists(built, 150, seed=5)]
    assert [p["name"] for p in _read_folder(out)] == expected


@pytest.mark.parametrize(
    ("source", "message"),
    [("synthetic:none", "use synthetic:N"), ("missing.csv", "no such catalog file")],
)
def test_cli_bad_catalog_source_is_a_clear_error(
    source: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A catalog source that cannot be read exits 2 with a one-line error, no traceback."""
    argv = ["synth-playlists", "--catalog", str(tmp_path / source) if ".csv" in source else source]
    code = main([*argv, "--playlists", "5", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err
