"""Catalog loading (CSV/JSONL column variants, bad rows), Arrow round trip, synthetic data."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from models.catalog import Catalog, LoadReport, load_rows, table_from_rows
from models.errors import CatalogError
from models.synthetic import synthetic_catalog

FEATURES = (
    "energy=0.8,valence=0.6,danceability=0.7,acousticness=0.1,"
    "instrumentalness=0.0,speechiness=0.05,tempo=128.0,loudness=-5.0"
)


def _csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def _features_header_values() -> tuple[str, str]:
    pairs = [p.split("=") for p in FEATURES.split(",")]
    return ",".join(k for k, _ in pairs), ",".join(v for _, v in pairs)


def test_csv_spotify_tracks_layout(tmp_path: Path) -> None:
    """`track_id/track_name/artists/track_genre/popularity` columns load into the schema."""
    names, values = _features_header_values()
    path = _csv(
        tmp_path / "a.csv",
        f"track_id,track_name,artists,album_name,track_genre,"
        f"popularity,explicit,duration_ms,{names}",
        [f"t1,Song,\"['Ann', 'Bo']\",Alb,hip-hop,55,True,200000,{values}"],
    )
    rows, report = load_rows(path)
    assert report.skipped == []
    assert rows[0]["id"] == "t1"
    assert rows[0]["artist"] == "Ann"
    assert rows[0]["genres"] == ["hip hop"]
    assert rows[0]["explicit"] is True
    assert rows[0]["popularity"] == 55


def test_csv_playlist_genre_layout(tmp_path: Path) -> None:
    """`track_artist/playlist_genre+playlist_subgenre/track_popularity` load too."""
    names, values = _features_header_values()
    path = _csv(
        tmp_path / "b.csv",
        f"track_id,track_name,track_artist,track_album_name,"
        f"playlist_genre,playlist_subgenre,track_popularity,"
        f"track_album_release_date,{names}",
        [f"t2,Song,Cy,Alb,pop,dance pop,70,1987-05-01,{values}"],
    )
    rows, _ = load_rows(path)
    assert rows[0]["genres"] == ["pop", "dance pop"]
    assert rows[0]["year"] == 1987
    assert rows[0]["popularity"] == 70


def test_bad_rows_are_reported_with_line_numbers(tmp_path: Path) -> None:
    """Rows with missing ids or bad numbers are skipped and named by line; repeats merge."""
    names, values = _features_header_values()
    bad_energy = values.replace("0.8", "1.7", 1)
    path = _csv(
        tmp_path / "c.csv",
        f"id,name,artist,genre,{names}",
        [
            f"t1,Ok,A,rock,{values}",
            f",NoId,A,rock,{values}",
            f"t3,Loud,A,rock,{bad_energy}",
            f"t1,Dup,A,rock,{values}",
            f"t5,Nan,A,rock,{values.replace('128.0', 'fast')}",
        ],
    )
    rows, report = load_rows(path)
    assert [r["id"] for r in rows] == ["t1"]
    assert [line for line, _ in report.skipped] == [3, 4, 6]
    reasons = " | ".join(why for _, why in report.skipped)
    assert "missing track id" in reasons
    assert "energy" in reasons
    assert "tempo" in reasons
    assert report.merged == 1


def test_strict_mode_fails_the_load(tmp_path: Path) -> None:
    """With strict=True, any bad row fails the whole load with its line number."""
    names, values = _features_header_values()
    path = _csv(
        tmp_path / "d.csv",
        f"id,name,artist,genre,{names}",
        [f"t1,Ok,A,rock,{values}", f"t2,,A,rock,{values}"],
    )
    with pytest.raises(CatalogError, match="line 3") as caught:
        load_rows(path, strict=True)
    assert caught.value.bad_rows[0][0] == 3


def test_jsonl_with_bad_lines(tmp_path: Path) -> None:
    """JSONL loads objects; invalid JSON and non-objects are reported by line."""
    record = {
        "id": "j1",
        "name": "S",
        "artists": ["Dee"],
        "genres": ["Jazz", "Soul"],
        **{k: float(v) for k, v in (p.split("=") for p in FEATURES.split(","))},
    }
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join([json.dumps(record), "{not json", "[1, 2]"]) + "\n")
    rows, report = load_rows(path)
    assert rows[0]["genres"] == ["jazz", "soul"]
    assert rows[0]["artist"] == "Dee"
    assert [line for line, _ in report.skipped] == [2, 3]


def _spotify_songs(path: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    """A CSV in the TidyTuesday spotify_songs layout: (id, title, playlist, genre, subgenre)."""
    names, values = _features_header_values()
    header = (
        "track_id,track_name,track_artist,track_popularity,track_album_name,"
        f"playlist_name,playlist_genre,playlist_subgenre,duration_ms,{names}"
    )
    lines = [
        f'{track},{title},Ann,50,Alb,"{playlist}",{genre},{sub},200000,{values}'
        for track, title, playlist, genre, sub in rows
    ]
    return _csv(path, header, lines)


def test_repeated_track_ids_merge_genres_and_tags(tmp_path: Path) -> None:
    """Rows of one track id become one row: first fields win, genres and tags are unioned."""
    path = _spotify_songs(
        tmp_path / "songs.csv",
        [
            ("t1", "First", "Pop Remix", "pop", "dance pop"),
            ("t2", "Other", "Rock Classics", "rock", "classic rock"),
            ("t1", "Second", "Hip Hop, Rap, Heavy 808's", "latin", "dance pop"),
            ("t1", "Third", "pop  remix", "pop", "electropop"),
        ],
    )
    rows, report = load_rows(path, strict=True)
    assert [r["id"] for r in rows] == ["t1", "t2"]
    assert rows[0]["title"] == "First"
    assert rows[0]["genres"] == ["pop", "dance pop", "latin", "electropop"]
    assert rows[0]["tags"] == ["Pop Remix", "Hip Hop, Rap, Heavy 808's"]
    assert rows[1]["tags"] == ["Rock Classics"]
    assert (report.rows, report.merged, report.skipped) == (2, 2, [])


def test_bad_repeat_of_a_track_is_skipped_and_leaves_the_first_row_intact(
    tmp_path: Path,
) -> None:
    """A later row of a known id that fails validation is a bad row; it merges nothing."""
    path = _spotify_songs(
        tmp_path / "songs.csv",
        [("t1", "First", "Pop Remix", "pop", "dance pop"), ("t1", "", "Chill Hits", "r&b", "")],
    )
    rows, report = load_rows(path)
    assert rows == [{**rows[0], "title": "First", "genres": ["pop", "dance pop"]}]
    assert rows[0]["tags"] == ["Pop Remix"]
    assert report.merged == 0
    assert report.skipped == [(3, "missing title or artist")]


def test_summary_counts_skipped_rows_by_reason(tmp_path: Path) -> None:
    """The summary line names kept, merged and skipped rows, skips counted per reason kind."""
    good = {
        "id": "j1",
        "name": "S",
        "artists": "Dee",
        **{k: float(v) for k, v in (p.split("=") for p in FEATURES.split(","))},
    }
    lines = [
        json.dumps(good),
        json.dumps({**good, "tags": ["Jazz Classics"]}),
        json.dumps({**good, "id": "j2", "energy": 1.5}),
        json.dumps({**good, "id": "j3", "popularity": 400}),
        json.dumps({**good, "id": "j4", "name": ""}),
        json.dumps({**good, "id": "j5", "tempo": "fast"}),
        "{oops",
    ]
    path = tmp_path / "s.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, report = load_rows(path)
    assert report.reasons == {
        "out of range": 2,
        "missing field": 1,
        "invalid value": 1,
        "unreadable": 1,
    }
    assert report.summary() == (
        "kept 1 track; merged 1 duplicate row; "
        "skipped 5 (out of range 2, invalid value 1, missing field 1, unreadable 1)"
    )
    assert LoadReport(rows=3).summary() == "kept 3 tracks; merged 0 duplicate rows; skipped 0"


@pytest.mark.parametrize(
    ("fields", "tags"),
    [
        (
            {"tags": ["Chill  Jazz ", "chill jazz", "", "Jazz Classics"]},
            ["Chill Jazz", "Jazz Classics"],
        ),
        ({"tags": "Hip Hop, Rap; Workout Rock"}, ["Hip Hop, Rap", "Workout Rock"]),
        ({"playlists": "Happy Hits,Chill Jazz"}, ["Happy Hits", "Chill Jazz"]),
        ({"playlist_name": "Rap, Trap"}, ["Rap, Trap"]),
        ({"playlist_name": "Ｃｈｉｌｌ\u3000Ｈｉｔｓ"}, ["Chill Hits"]),
        ({"playlist_name": "New R&B\u200f\u200b   \u200d"}, ["New R&B"]),
        ({"tags": " ; "}, []),
        ({}, []),
    ],
)
def test_tags_are_normalised_playlist_names(
    tmp_path: Path, fields: dict[str, object], tags: list[str]
) -> None:
    """Tags come from tags/playlists (list or ;/, string) or playlist_name, NFKC and trimmed."""
    record = {
        "id": "j1",
        "name": "S",
        "artists": "Dee",
        **{k: float(v) for k, v in (p.split("=") for p in FEATURES.split(","))},
        **fields,
    }
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    rows, _ = load_rows(path)
    assert rows[0]["tags"] == tags


def test_loaded_tags_reach_the_catalog_table(tmp_path: Path) -> None:
    """Merged rows build a catalog whose tags column holds every playlist of a track."""
    path = _spotify_songs(
        tmp_path / "songs.csv",
        [("t1", "A", "Pop Remix", "pop", ""), ("t1", "A", "Dance Pop", "pop", "")],
    )
    rows, _ = load_rows(path)
    catalog = Catalog(table_from_rows(rows))
    assert catalog.table.column("tags").to_pylist() == [["Pop Remix", "Dance Pop"]]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_gzipped_catalogs_load_like_plain_ones(tmp_path: Path, suffix: str) -> None:
    """A .csv.gz or .jsonl.gz file gives the same rows and report as the plain file."""
    if suffix == ".csv":
        plain = _spotify_songs(
            tmp_path / "songs.csv",
            [
                ("t1", "A", "Pop Remix", "pop", ""),
                ("t1", "A", "Dance", "edm", ""),
                ("", "B", "", "", ""),
            ],
        )
    else:
        record = {
            "id": "j1",
            "name": "S",
            "artists": "Dee",
            "tags": ["Chill Jazz"],
            **{k: float(v) for k, v in (p.split("=") for p in FEATURES.split(","))},
        }
        plain = tmp_path / "songs.jsonl"
        plain.write_text(json.dumps(record) + "\n[]\n", encoding="utf-8")
    packed = tmp_path / f"packed{suffix}.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert load_rows(packed) == load_rows(plain)


def _gzip_of_catalog() -> bytes:
    names, values = _features_header_values()
    rows = [f"t{i},Song {i},A,rock,{values}" for i in range(2_000)]
    text = "\n".join([f"id,name,artist,genre,{names}", *rows]) + "\n"
    return gzip.compress(text.encode())


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda data: b"id,name\nt1,plain text, not gzip\n",
        lambda data: data[: len(data) // 2],
        lambda data: data[:200] + bytes(b ^ 0x5A for b in data[200:400]) + data[400:],
        lambda data: data[:-8] + bytes(8),
    ],
    ids=["not-gzip", "truncated", "garbled", "bad-crc"],
)
def test_corrupt_gzip_raises_catalog_error(
    tmp_path: Path, corrupt: Callable[[bytes], bytes]
) -> None:
    """A damaged .gz catalog fails with CatalogError, never a raw gzip or zlib error."""
    path = tmp_path / "bad.csv.gz"
    path.write_bytes(corrupt(_gzip_of_catalog()))
    with pytest.raises(CatalogError, match="unreadable"):
        load_rows(path)


def test_unknown_suffix_names_the_supported_ones(tmp_path: Path) -> None:
    """An unsupported file name is refused with the list of formats that are accepted."""
    path = tmp_path / "catalog.csv.bz2"
    path.write_bytes(b"x")
    with pytest.raises(CatalogError, match=r"\.csv, \.jsonl, \.csv\.gz, \.jsonl\.gz"):
        load_rows(path)


@pytest.mark.parametrize("name", ["missing.csv", "catalog.parquet"])
def test_unreadable_sources(tmp_path: Path, name: str) -> None:
    """Missing files and unknown formats raise CatalogError."""
    path = tmp_path / name
    if name.endswith(".parquet"):
        path.write_text("x")
    with pytest.raises(CatalogError):
        load_rows(path)


def test_arrow_round_trip_and_derived_arrays(tmp_path: Path) -> None:
    """Save/load keeps every row; genre bits and artist codes are derived on load."""
    catalog = synthetic_catalog(500, seed=3)
    catalog.save(tmp_path / "c.arrow")
    loaded = Catalog.load(tmp_path / "c.arrow")
    assert loaded.table.equals(catalog.table)
    genres = loaded.table.column("genres").to_pylist()
    jazz = loaded.has_genre("jazz")
    assert jazz.tolist() == ["jazz" in g for g in genres]
    assert not loaded.has_genre("polka").any()
    assert len(set(loaded.artist_codes.tolist())) == len(
        set(loaded.table.column("artist").to_pylist())
    )


def test_many_genres_use_several_bit_words() -> None:
    """Catalogs with more than 64 genres keep every genre distinct."""
    base = synthetic_catalog(1, seed=1).tracks([0])[0]
    rows = [{**base, "id": f"t{i}", "genres": [f"genre {i}"]} for i in range(70)]
    catalog = Catalog(table_from_rows(rows))
    assert catalog.genre_bits.shape == (70, 2)
    assert [int(np.flatnonzero(catalog.has_genre(f"genre {i}"))[0]) for i in range(70)] == list(
        range(70)
    )


def test_synthetic_catalog_is_seeded() -> None:
    """The same size and seed give the same catalog; another seed a different one."""
    assert synthetic_catalog(300, seed=5).table.equals(synthetic_catalog(300, seed=5).table)
    assert not synthetic_catalog(300, seed=5).table.equals(synthetic_catalog(300, seed=6).table)


def test_synthetic_tags_are_seeded_and_describe_the_track() -> None:
    """Synthetic tracks carry 0-2 playlist names, most at least one, that fit the track."""
    catalog = synthetic_catalog(5_000, seed=4)
    tags = catalog.table.column("tags").to_pylist()
    assert tags == synthetic_catalog(5_000, seed=4).table.column("tags").to_pylist()
    assert tags != synthetic_catalog(5_000, seed=5).table.column("tags").to_pylist()
    assert sum(1 for t in tags if t) >= 0.7 * len(tags)
    assert max(len(t) for t in tags) == 2
    assert all(len(set(t)) == len(t) for t in tags)
    assert len({name for t in tags for name in t}) > 100
    energy = catalog.features["energy"]
    chill = [i for i, t in enumerate(tags) if any(name.startswith("Chill ") for name in t)]
    assert chill
    assert all(energy[i] <= 0.4 for i in chill)
    genres = catalog.table.column("genres").to_pylist()
    jazz = [i for i, t in enumerate(tags) if "Chill Jazz" in t or "Jazz Classics" in t]
    assert jazz
    assert all(genres[i][0] == "jazz" for i in jazz)


def test_synthetic_catalog_is_realistic() -> None:
    """Features stay in range, artists repeat with Zipf-like skew, every genre occurs."""
    catalog = synthetic_catalog(20_000)
    for name in ("energy", "valence", "danceability", "instrumentalness"):
        values = catalog.features[name]
        assert values.min() >= 0
        assert values.max() <= 1
    counts = np.bincount(catalog.artist_codes)
    assert counts.max() > 10 * np.median(counts)
    assert len(catalog.genre_names) == 30


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("duration_ms", "inf", "duration"),
        ("duration_ms", 10**10, "duration"),
        ("id", "   ", "missing track id"),
        ("popularity", 101, "popularity"),
    ],
)
def test_out_of_range_fields_are_bad_rows(
    tmp_path: Path, field: str, value: object, reason: str
) -> None:
    """Overflowing, blank or out-of-range fields are reported as bad rows, never crash."""
    good = {
        "id": "j1",
        "name": "S",
        "artists": "Dee",
        "genre": "jazz",
        **{k: float(v) for k, v in (p.split("=") for p in FEATURES.split(","))},
    }
    path = tmp_path / "f.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "j2", field: value}) + "\n")
    rows, report = load_rows(path)
    assert [r["id"] for r in rows] == ["j1"]
    assert report.skipped[0][0] == 2
    assert reason in report.skipped[0][1]


@pytest.mark.parametrize(
    "content", [b"id,name\nt1,caf\xe9\n", b"id,name\nt1," + b"x" * 200_000 + b"\n"]
)
def test_unreadable_files_raise_catalog_error(tmp_path: Path, content: bytes) -> None:
    """Undecodable bytes or oversized fields fail with CatalogError, not a raw exception."""
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(CatalogError, match="unreadable"):
        load_rows(path)
