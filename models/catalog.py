"""The track catalog: schema, CSV/JSONL loaders (plain or gzip), a columnar in-memory form.

A catalog of a million tracks must not become a million Python objects, so it is an Arrow
table (memory-mapped from the artifact) plus numpy arrays derived once at load: features,
a genre bitset and per-track mood/activity bits that the ranker filters on.
"""

from __future__ import annotations

import csv
import functools
import gzip
import json
import math
import threading
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from cachetools import LRUCache

from models import vocab
from models.bitset import RowSet
from models.errors import CatalogError

UNIT_FEATURES = (
    "energy",
    "valence",
    "danceability",
    "acousticness",
    "instrumentalness",
    "speechiness",
)
FEATURES = (*UNIT_FEATURES, "tempo", "loudness")
# The audio features a playlist's sound profile is judged by.
PROFILE_FEATURES = ("energy", "valence", "danceability", "acousticness")
_RANGES: Mapping[str, tuple[float, float]] = {
    **dict.fromkeys(UNIT_FEATURES, (0.0, 1.0)),
    "tempo": (0.0, 300.0),
    "loudness": (-60.0, 5.0),
}

SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("title", pa.string()),
        ("artist", pa.string()),
        ("album", pa.string()),
        ("genres", pa.list_(pa.string())),
        ("tags", pa.list_(pa.string())),  # editorial playlist names, as spelled
        *[(f, pa.float32()) for f in FEATURES],
        ("explicit", pa.bool_()),
        ("duration_ms", pa.int32()),
        ("popularity", pa.int16()),
        ("year", pa.int16()),  # 0 when unknown
    ]
)

# Column names used by public Spotify-style datasets → our field names, first match wins.
COLUMN_VARIANTS: Mapping[str, tuple[str, ...]] = {
    "id": ("track_id", "id"),
    "title": ("track_name", "name", "title"),
    "artist": ("track_artist", "artists", "artist", "artist_name"),
    "album": ("track_album_name", "album_name", "album"),
    "genres": ("track_genre", "genre", "genres"),
    "tags": ("tags", "playlists", "playlist_names", "playlist_name"),
    "popularity": ("track_popularity", "popularity"),
    "year": ("year", "release_year", "track_album_release_date", "release_date"),
    "duration_ms": ("duration_ms", "duration"),
    **{f: (f,) for f in FEATURES},
    "explicit": ("explicit",),
}
_PLAYLIST_GENRE_COLUMNS = ("playlist_genre", "playlist_subgenre")
# One playlist per row: real names contain commas ("Hip Hop, Rap, Heavy 808's"), never split.
_SINGLE_TAG_COLUMNS = frozenset({"playlist_name"})
# Zero-width marks that editorial names trail ("New R&B\u200f\u200b \u200d"); NFKC keeps them.
_INVISIBLE = "\u00ad\u200b\u200c\u200d\u200e\u200f\u2060\ufeff"

# Coarse kinds of bad rows, counted in `LoadReport.reasons`.
UNREADABLE = "unreadable"
MISSING_FIELD = "missing field"
OUT_OF_RANGE = "out of range"
INVALID_VALUE = "invalid value"

SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".csv.gz", ".jsonl.gz")


@dataclass
class LoadReport:
    """What a loader kept, folded into earlier rows (same id) and skipped (line, reason)."""

    rows: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)
    merged: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, line: int, kind: str, why: str) -> None:
        """Record a row that could not be used, and count it under its coarse `kind`."""
        self.skipped.append((line, why))
        self.reasons[kind] = self.reasons.get(kind, 0) + 1

    def summary(self) -> str:
        """One line: tracks kept, duplicate rows merged, rows skipped by kind."""
        kinds = sorted(self.reasons.items(), key=lambda item: (-item[1], item[0]))
        detail = ", ".join(f"{kind} {count}" for kind, count in kinds)
        return (
            f"kept {_count(self.rows, 'track')}; "
            f"merged {_count(self.merged, 'duplicate row')}; "
            f"skipped {len(self.skipped)}" + (f" ({detail})" if detail else "")
        )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


class _BadField(CatalogError, ValueError):
    """A record that fails validation, with the coarse kind its report counts it under (a
    ValueError too, as the parsers it stands beside raise)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _parse_bool(raw: Any) -> bool:
    text = str(raw).strip().casefold()
    if text in {"true", "1", "yes", "t", "y"}:
        return True
    if text in {"false", "0", "no", "f", "n", ""}:
        return False
    raise _BadField(INVALID_VALUE, f"explicit must be a boolean, got {raw!r}")


def _parse_number(raw: Any, name: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise _BadField(INVALID_VALUE, f"{name}={raw!r} is not a number") from None
    except OverflowError:
        raise _BadField(OUT_OF_RANGE, f"{name} is too large") from None
    if not math.isfinite(value):
        raise _BadField(OUT_OF_RANGE, f"{name}={raw!r} is not a finite number")
    return value


def _parse_artist(raw: Any) -> str:
    # Some datasets store artists as "['A', 'B']" or "A;B"; keep the first credited artist.
    if isinstance(raw, list):
        raw = raw[0] if raw else ""
    text = str(raw).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1].split(",")[0].strip().strip("'\"")
    return text.split(";")[0].strip()


def _parse_genres(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else str(raw).replace(";", ",").split(",")
    seen: dict[str, None] = {}
    for item in items:
        name = vocab.canonical_genre(str(item))
        if name:
            seen.setdefault(name, None)
    return list(seen)


@functools.lru_cache(maxsize=4096)  # a catalog repeats a few hundred playlist names
def _normalise_tag(text: str) -> str:
    collapsed = " ".join(unicodedata.normalize("NFKC", text).split())
    return " ".join(collapsed.strip(_INVISIBLE + " ").split())


def _parse_tags(record: Mapping[str, Any]) -> list[str]:
    """Editorial playlist names: NFKC, whitespace collapsed, case kept, first spelling wins."""
    for column in COLUMN_VARIANTS["tags"]:
        raw = record.get(column)
        if raw in (None, "", []):
            continue
        if isinstance(raw, list):
            items = [str(item) for item in raw if item is not None]
        elif column in _SINGLE_TAG_COLUMNS:
            items = [str(raw)]
        else:
            # ";" when the source uses it, so names with commas survive; else ",".
            text = str(raw)
            items = text.split(";") if ";" in text else text.split(",")
        seen: dict[str, str] = {}
        for item in items:
            name = _normalise_tag(item)
            if name:
                seen.setdefault(name.casefold(), name)
        return list(seen.values())
    return []


def _parse_year(raw: Any) -> int:
    text = str(raw).strip()
    if not text:
        return 0
    try:
        year = int(text[:4])
    except ValueError:
        raise _BadField(INVALID_VALUE, f"year {raw!r} does not start with a year") from None
    if not 1900 <= year <= 2100:
        raise _BadField(OUT_OF_RANGE, f"year {year} is outside 1900-2100")
    return year


def _pick(record: Mapping[str, Any], name: str) -> Any:
    for column in COLUMN_VARIANTS[name]:
        value = record.get(column)
        if value not in (None, ""):
            return value
    return None


def parse_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one source record (any supported column layout) into a schema row.

    Raises ValueError (or TypeError, ArithmeticError) saying what is wrong with it.
    """
    track_id = str(_pick(record, "id") or "").strip()
    if not track_id:
        raise _BadField(MISSING_FIELD, "missing track id")
    genres_raw = _pick(record, "genres")
    if genres_raw is None:
        genres_raw = [record[c] for c in _PLAYLIST_GENRE_COLUMNS if record.get(c)]
    row: dict[str, Any] = {
        "id": track_id,
        "title": str(_pick(record, "title") or "").strip(),
        "artist": _parse_artist(_pick(record, "artist") or ""),
        "album": str(_pick(record, "album") or "").strip(),
        "genres": _parse_genres(genres_raw or []),
        "tags": _parse_tags(record),
    }
    if not row["title"] or not row["artist"]:
        raise _BadField(MISSING_FIELD, "missing title or artist")
    for feature in FEATURES:
        raw = _pick(record, feature)
        if raw is None:
            raise _BadField(MISSING_FIELD, f"missing {feature}")
        value = _parse_number(raw, feature)
        low, high = _RANGES[feature]
        if not low <= value <= high:
            raise _BadField(OUT_OF_RANGE, f"{feature}={raw!r} outside {low}..{high}")
        row[feature] = value
    row["explicit"] = _parse_bool(_pick(record, "explicit") or False)
    duration = int(_parse_number(_pick(record, "duration_ms") or 0, "duration_ms"))
    popularity = int(_parse_number(_pick(record, "popularity") or 0, "popularity"))
    if not 0 <= duration < 2**31:
        raise _BadField(OUT_OF_RANGE, f"duration_ms {duration} is outside 0..2^31-1")
    if not 0 <= popularity <= 100:
        raise _BadField(OUT_OF_RANGE, f"popularity {popularity} is outside 0..100")
    row["duration_ms"], row["popularity"] = duration, popularity
    row["year"] = _parse_year(_pick(record, "year") or "")
    return row


def _source_format(path: Path) -> tuple[str, bool]:
    """("csv" or "jsonl", gzip-compressed?) from the file name, or CatalogError."""
    for suffix in SUPPORTED_SUFFIXES:
        if path.name.endswith(suffix):
            return suffix.split(".")[1], suffix.endswith(".gz")
    raise CatalogError(f"{path}: unsupported catalog format (use {', '.join(SUPPORTED_SUFFIXES)})")


def _open_text(path: Path, compressed: bool, newline: str | None) -> TextIO:
    if compressed:  # decompressed as it is read, never whole
        return gzip.open(path, "rt", encoding="utf-8", newline=newline)
    return path.open(encoding="utf-8", newline=newline)


def _records(path: Path) -> Iterator[tuple[int, Mapping[str, Any] | None, str]]:
    """Yield (line number, record or None, error) from a CSV or JSONL file, maybe gzipped."""
    kind, compressed = _source_format(path)
    if kind == "jsonl":
        with _open_text(path, compressed, None) as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, None, f"invalid JSON: {exc.msg}"
                    continue
                if isinstance(record, dict):
                    yield number, record, ""
                else:
                    yield number, None, "not a JSON object"
    else:
        with _open_text(path, compressed, "") as handle:
            reader = csv.DictReader(handle)
            for record in reader:
                yield reader.line_num, record, ""


def load_rows(path: Path, *, strict: bool = False) -> tuple[list[dict[str, Any]], LoadReport]:
    """Read and validate a catalog; repeated ids are merged, bad rows reported (or raise).

    Accepts .csv, .jsonl and their .gz forms. With `strict`, any skipped row fails the
    load; merging rows of one track is never an error.
    """
    if not path.is_file():
        raise CatalogError(f"{path}: no such catalog file")
    rows: list[dict[str, Any]] = []
    report = LoadReport()
    try:
        _collect(_records(path), rows, report)
    except (UnicodeDecodeError, csv.Error, OSError, EOFError, zlib.error) as exc:
        # OSError covers gzip.BadGzipFile; EOFError a truncated gzip stream.
        done = len(rows) + report.merged + len(report.skipped)
        raise CatalogError(f"{path}: unreadable after {done} records: {exc}") from exc
    report.rows = len(rows)
    if report.skipped and strict:
        lines = "; ".join(f"line {n}: {why}" for n, why in report.skipped[:20])
        raise CatalogError(f"{path}: {len(report.skipped)} bad rows ({lines})", report.skipped)
    if not rows:
        raise CatalogError(f"{path}: no valid tracks", report.skipped)
    return rows, report


def _collect(
    records: Iterator[tuple[int, Mapping[str, Any] | None, str]],
    rows: list[dict[str, Any]],
    report: LoadReport,
) -> None:
    """Validate records into `rows`; a repeated id adds its genres and tags to the first row."""
    first_rows: dict[str, dict[str, Any]] = {}  # id → its row: no extra object per track
    # Membership sets only for tracks that repeat, so a unique track costs nothing extra and
    # a track in thousands of playlists still merges in linear time.
    union_keys: dict[str, tuple[set[str], set[str]]] = {}
    for number, record, error in records:
        if record is None:
            report.skip(number, UNREADABLE, error)
            continue
        try:
            row = parse_record(record)
        except _BadField as exc:
            report.skip(number, exc.kind, str(exc))
            continue
        except (ValueError, TypeError) as exc:
            report.skip(number, INVALID_VALUE, str(exc))
            continue
        except ArithmeticError as exc:
            report.skip(number, OUT_OF_RANGE, str(exc))
            continue
        first = first_rows.setdefault(row["id"], row)
        if first is row:
            rows.append(row)
            continue
        keys = union_keys.get(row["id"])
        if keys is None:
            folded = {t.casefold() for t in first["tags"]}
            keys = union_keys[row["id"]] = (set(first["genres"]), folded)
        _union(first["genres"], keys[0], row["genres"], str)
        _union(first["tags"], keys[1], row["tags"], str.casefold)
        report.merged += 1


def _union(kept: list[str], seen: set[str], more: Iterable[str], key: Callable[[str], str]) -> None:
    for item in more:
        folded = key(item)
        if folded not in seen:
            seen.add(folded)
            kept.append(item)


def table_from_rows(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Arrow table in the catalog schema from validated rows."""
    return pa.Table.from_pylist(list(rows), schema=SCHEMA)


class StringColumn:
    """Row lookups in an Arrow string array without pyarrow calls on the request path.

    `take(...).to_pylist()` costs about twice as much as slicing the array's buffers, and it
    releases the GIL, which under load hands it to the ranking thread for up to a switch
    interval before the event loop gets it back. The data buffer is copied once into `bytes`
    (bytes slices decode faster than memoryview slices).
    """

    def __init__(self, array: pa.StringArray) -> None:
        _validity, offsets, data = array.buffers()
        if offsets is None or data is None or array.type != pa.string():
            raise CatalogError(f"expected a string array, got {array.type}")
        start = array.offset
        self._offsets = np.frombuffer(offsets, dtype=np.int32)[start : start + len(array) + 1]
        self._data = data.to_pybytes()

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def get(self, rows: Sequence[int] | np.ndarray) -> list[str]:
        """The strings at `rows`, in order."""
        at = np.asarray(rows, dtype=np.int64)
        data = self._data
        starts, ends = self._offsets[at].tolist(), self._offsets[at + 1].tolist()
        return [data[a:b].decode() for a, b in zip(starts, ends, strict=True)]


class Catalog:
    """Columnar catalog with the derived arrays the ranker needs."""

    def __init__(self, table: pa.Table) -> None:
        if not table.schema.equals(SCHEMA):
            raise CatalogError("catalog table does not match the track schema")
        self.table = table
        self.id_strings = StringColumn(table.column("id").combine_chunks())
        self.titles = StringColumn(table.column("title").combine_chunks())
        self.artists = StringColumn(table.column("artist").combine_chunks())
        self.features = {f: table.column(f).to_numpy() for f in FEATURES}
        self.popularity = table.column("popularity").to_numpy().astype(np.float32)
        self.year = table.column("year").to_numpy()
        self.explicit = table.column("explicit").to_numpy(zero_copy_only=False)
        artists = pc.dictionary_encode(table.column("artist")).combine_chunks()
        self.artist_codes = artists.indices.to_numpy()
        self.artist_names: list[str] = artists.dictionary.to_pylist()
        self.genre_names, self.genre_bits = _genre_bitset(table.column("genres"))
        self.genre_index = {g: i for i, g in enumerate(self.genre_names)}
        self.mood_bits = _slot_bits(vocab.MOODS, self.features)
        self.activity_bits = _slot_bits(vocab.ACTIVITIES, self.features)
        self._sets: dict[tuple[str, str], RowSet] = {}
        # Range sets (eras, tempo words, bpm): few distinct ranges repeat, bpm ones vary.
        self._ranges: LRUCache[tuple[str, float, float], RowSet] = LRUCache(maxsize=32)
        self._ranges_lock = threading.Lock()  # ranking may run on several threads

    def prepare(self) -> None:
        """Make the derived arrays every ranking reads (otherwise made on first use)."""
        for name in ("song_codes", "profile", "profile_mean", "artist_index", "_artist_order"):
            getattr(self, name)

    @functools.cached_property
    def _artist_order(self) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.artist_codes, kind="stable")
        bounds = np.searchsorted(self.artist_codes[order], np.arange(len(self.artist_names) + 1))
        return order, bounds

    @functools.cached_property
    def row_of(self) -> dict[str, int]:
        """Track id → row, made on first use (training and benchmarks; not the miss path)."""
        return {track: row for row, track in enumerate(self.table.column("id").to_pylist())}

    @functools.cached_property
    def artist_index(self) -> dict[str, int]:
        """Artist name → code (index into `artist_names`)."""
        return {name: code for code, name in enumerate(self.artist_names)}

    def artist_rows(self, code: int) -> np.ndarray:
        """Rows of the tracks by artist `code` (an index into `artist_names`)."""
        order, bounds = self._artist_order
        return order[bounds[code] : bounds[code + 1]]

    @functools.cached_property
    def artist_popularity(self) -> np.ndarray:
        """Per artist, the popularity of their most popular track."""
        best = np.zeros(len(self.artist_names), dtype=np.float32)
        np.maximum.at(best, self.artist_codes, self.popularity)
        return best

    @functools.cached_property
    def song_codes(self) -> np.ndarray:
        """Per track, a code shared by every version of one song (see models/tracktext.py)."""
        from models.tracktext import song_codes

        return song_codes(self.table)

    @functools.cached_property
    def profile(self) -> np.ndarray:
        """Per track, the audio features a playlist's sound is judged by (float32, n × 4)."""
        return np.stack([self.features[f] for f in PROFILE_FEATURES], axis=1)

    @functools.cached_property
    def profile_mean(self) -> np.ndarray:
        """The catalog's mean profile, weighted by popularity (what listeners mostly hear)."""
        weights = self.popularity.astype(np.float64) + 1.0
        mean: np.ndarray = (self.profile * weights[:, None]).sum(axis=0) / weights.sum()
        return mean

    @functools.cached_property
    def latest_year(self) -> int:
        """The newest release year in the catalog (relative eras such as "throwback")."""
        known = self.year[self.year > 0]
        return int(known.max()) if len(known) else 0

    def theme_set(self, theme: str) -> RowSet:
        """The tracks whose title, album or tags speak of `theme` (made once per theme)."""
        found = self._sets.get(("theme", theme))
        if found is None:
            from models.tracktext import theme_mask

            found = self._sets["theme", theme] = RowSet.from_mask(theme_mask(self.table, theme))
            # The regular expressions ran over every title and album in Arrow's allocator,
            # which would keep the ~40 MB they freed for good.
            pa.default_memory_pool().release_unused()
        return found

    def slot_mask(self, kind: str, name: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of tracks (all, or `rows`) with genre, mood or activity `name`.

        Read from the packed bit columns at `rows` alone (~8 µs for 500 rows): a kept
        one-byte-per-track mask per value would pick them in ~2 µs, but every value a
        prompt names would hold a megabyte per million tracks for good (~45 MB for all of
        them at 1M). Catalog-wide filtering uses `slot_set`.
        """
        if kind == "genre":
            return self.has_genre(name, rows)
        values = vocab.MOODS if kind == "mood" else vocab.ACTIVITIES
        position = next((i for i, v in enumerate(values) if v.name == name), None)
        if position is None:
            raise CatalogError(f"unknown {kind} {name!r}")
        bits = self.mood_bits if kind == "mood" else self.activity_bits
        picked = bits if rows is None else bits[rows]
        found: np.ndarray = (picked >> np.uint16(position) & np.uint16(1)).astype(bool)
        return found

    def slot_set(self, kind: str, name: str) -> RowSet:
        """The tracks with genre, mood or activity `name`, as a packed set (made once)."""
        found = self._sets.get((kind, name))
        if found is None:
            found = self._sets[kind, name] = RowSet.from_mask(self.slot_mask(kind, name))
        return found

    def range_mask(self, column: str, low: float, high: float, rows: np.ndarray) -> np.ndarray:
        """Boolean mask of `rows` whose `column` ("tempo" or "year") lies in [low, high]."""
        picked = (self.year if column == "year" else self.features[column])[rows]
        inside: np.ndarray = (picked >= low) & (picked <= high)
        return inside

    def range_set(self, column: str, low: float, high: float) -> RowSet:
        """The tracks whose `column` lies in [low, high]; the last 32 ranges are kept."""
        with self._ranges_lock:
            found = self._ranges.get((column, low, high))
        if found is None:
            values = self.year if column == "year" else self.features[column]
            found = RowSet.from_mask((values >= low) & (values <= high))
            with self._ranges_lock:
                self._ranges[column, low, high] = found
        return found

    def instrumental_mask(self, rows: np.ndarray) -> np.ndarray:
        """Which of `rows` are instrumental (what "without vocals" keeps)."""
        kept: np.ndarray = self.features["instrumentalness"][rows] >= 0.5
        return kept

    @functools.cached_property
    def instrumental_set(self) -> RowSet:
        """The instrumental tracks."""
        return RowSet.from_mask(self.features["instrumentalness"] >= 0.5)

    @functools.cached_property
    def every_row(self) -> RowSet:
        """Every track, as a set (the start of every catalog-wide filter)."""
        return RowSet.full(len(self))

    @functools.cached_property
    def explicit_set(self) -> RowSet:
        """The explicit tracks."""
        return RowSet.from_mask(self.explicit)

    def __len__(self) -> int:
        return int(self.table.num_rows)

    def has_genre(self, genre: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask: which tracks (all, or `rows`) carry `genre`."""
        bits = self.genre_bits if rows is None else self.genre_bits[rows]
        code = self.genre_index.get(genre)
        if code is None:
            return np.zeros(len(bits), dtype=bool)
        return ((bits[:, code // 64] >> np.uint64(code % 64)) & np.uint64(1)).astype(bool)

    def tracks(self, rows: Iterable[int]) -> list[dict[str, Any]]:
        """Full records of the given rows, in order."""
        records: list[dict[str, Any]] = self.table.take(
            pa.array(list(rows), pa.int64())
        ).to_pylist()
        return records

    def save(self, path: Path) -> None:
        """Write the table as an uncompressed Arrow IPC file (memory-mappable)."""
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
            writer.write_table(self.table, max_chunksize=1 << 16)

    @classmethod
    def load(cls, path: Path) -> Catalog:
        """Memory-map an Arrow IPC catalog written by `save`."""
        try:
            source = pa.memory_map(str(path), "r")
            table = pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowInvalid) as exc:
            raise CatalogError(f"{path}: cannot read catalog: {exc}") from exc
        return cls(table)


def _genre_bitset(column: pa.ChunkedArray) -> tuple[tuple[str, ...], np.ndarray]:
    lists = column.combine_chunks()
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy()
    names = tuple(sorted(set(flat.unique().to_pylist())))
    codes = pc.index_in(flat, value_set=pa.array(names, pa.string())).to_numpy()
    words = max(1, math.ceil(len(names) / 64))
    bits = np.zeros((len(lists), words), dtype=np.uint64)
    np.bitwise_or.at(
        bits, (parents, codes // 64), np.left_shift(np.uint64(1), (codes % 64).astype(np.uint64))
    )
    return names, bits


def _slot_bits(values: Sequence[vocab.SlotValue], features: vocab.Features) -> np.ndarray:
    bits = np.zeros(len(next(iter(features.values()))), dtype=np.uint16)
    for i, value in enumerate(values):
        bits |= value.predicate(features).astype(np.uint16) << np.uint16(i)
    return bits
