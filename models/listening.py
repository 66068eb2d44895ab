"""Listener events as training examples: the region's Parquet archive, read column by column.

The archiver (`regional.archive`) writes hive partitions `region=…/date=…/*.parquet`. This
module reads only the columns it needs, file by file and batch by batch (so memory follows
the number of distinct prompts and tracks, not the archive's size), keeps each `event_id`
once (the first seen, in the order the archives are given), labels events with rules v1 and
sums the labels per (prompt, catalog track):

    complete, save, thumb_up               -> +1 (accept)
    thumb_down, skip with dwell < early    -> -1 (reject)
    play, later skips                      ->  0 (nothing)

The same rules label prompts in the region's consumers (`regional.consumers.label_of`, which
uses the constants below). Events carry only keyed pseudonyms and masked prompt text; what
leaves here is aggregates of which tracks go with which words, never a user or stream id.
The aggregation is a GROUP BY prompt, track over deduplicated events: docs/LEARNING.md gives
it as SQL for engines that read the same files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import xxhash
from tqdm import tqdm

from models.errors import CorpusError
from models.titles import Example

LABEL_RULES_VERSION = 1
"""Version of the label rules; counters and artifacts of different versions are kept apart."""
ACCEPTING = ("complete", "save", "thumb_up")
"""Event types that accept the prompt's playlist for their track."""
REJECTING = ("thumb_down",)
"""Event types that reject it whatever the dwell; a skip rejects only when early."""
EARLY_SKIPPING = "skip"

READ_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("type", pa.string()),
        pa.field("dwell_ms", pa.int64()),
        pa.field("prompt", pa.string()),
        pa.field("track_id", pa.string()),
        pa.field("received_time", pa.timestamp("ms", tz="UTC")),
    ]
)
"""The archive columns training reads, as the archiver writes them (never `user` or
`stream_id`)."""
COLUMNS = READ_SCHEMA.names
BATCH_ROWS = 65_536

Lookup = Callable[[Sequence[str]], np.ndarray]


def labels(types: pa.Array, dwell_ms: pa.Array, early_skip_ms: int = 30_000) -> np.ndarray:
    """Rules v1 over Arrow columns: +1 accept, -1 reject, 0 nothing, per event (int8)."""
    accept = pc.is_in(types, value_set=pa.array(ACCEPTING, pa.string()))
    early = pc.and_(pc.equal(types, EARLY_SKIPPING), pc.less(dwell_ms, early_skip_ms))
    reject = pc.or_(pc.is_in(types, value_set=pa.array(REJECTING, pa.string())), early)
    plus = np.asarray(accept.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.int8)
    minus = np.asarray(reject.fill_null(False).to_numpy(zero_copy_only=False), dtype=np.int8)
    return plus - minus


def event_examples(
    archives: Sequence[str | os.PathLike[str]],
    lookup: Lookup,
    *,
    early_skip_ms: int = 30_000,
    progress: bool = True,
) -> tuple[list[Example], dict[str, Any]]:
    """One weighted example per prompt: +1 per accepting event, -1 per rejecting one, per
    catalog track; and a summary for the manifest (rules version, counts, time range)."""
    folders = [_folder(a) for a in archives]
    if not folders:
        raise CorpusError("no event archive given")
    fragments = [(folder, f) for folder in folders for f in _fragments(folder)]
    tally = _Tally(lookup)
    total = sum(_rows(fragment) for _, fragment in fragments)
    with tqdm(
        total=total, desc="events", unit="event", unit_scale=True, disable=not progress
    ) as bar:
        for batch in _batches(fragments):
            tally.add(batch, early_skip_ms)
            bar.update(batch.num_rows)
    examples = tally.examples()
    summary: dict[str, Any] = {
        "label_rules_version": LABEL_RULES_VERSION,
        "early_skip_ms": early_skip_ms,
        "archives": [str(f) for f in folders],
        "files": len(fragments),
        "events": tally.read,
        "duplicates": tally.duplicates,
        "accepts": tally.accepts,
        "rejects": tally.rejects,
        "unknown_tracks": tally.unknown,
        "without_prompt": tally.unprompted,
        "prompts": len(examples),
        "first_received": _iso(tally.first),
        "last_received": _iso(tally.last),
    }
    return examples, summary


# --- aggregation ----------------------------------------------------------------------------


class _Tally:
    """Running label sums per (prompt, catalog row), with the counts the summary reports."""

    COMPACT = 4_000_000
    """Buffered labelled events before they are summed, bounding memory between sums."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.prompts: dict[str, int] = {}
        self.seen = _SeenIds()
        self.read = self.duplicates = self.accepts = self.rejects = 0
        self.unknown = self.unprompted = 0
        self.first: int | None = None
        self.last: int | None = None
        self._keys: list[np.ndarray] = []
        self._sums: list[np.ndarray] = []
        self._buffered = 0

    def add(self, batch: pa.RecordBatch, early_skip_ms: int) -> None:
        self.read += batch.num_rows
        batch = batch.filter(pa.array(self._fresh(batch.column("event_id"))))
        if not batch.num_rows:
            return
        span = pc.min_max(batch.column("received_time").cast(pa.int64()))
        low, high = span["min"].as_py(), span["max"].as_py()
        self.first = low if self.first is None else min(self.first, low)
        self.last = high if self.last is None else max(self.last, high)
        label = labels(batch.column("type"), batch.column("dwell_ms"), early_skip_ms)
        self.accepts += int(np.count_nonzero(label > 0))
        self.rejects += int(np.count_nonzero(label < 0))
        prompted = np.asarray(
            pc.not_equal(batch.column("prompt"), "").to_numpy(zero_copy_only=False), dtype=bool
        )
        self.unprompted += int(np.count_nonzero((label != 0) & ~prompted))
        keep = (label != 0) & prompted
        batch, label = batch.filter(pa.array(keep)), label[keep]
        if not batch.num_rows:
            return
        rows = np.asarray(self.lookup(batch.column("track_id").to_pylist()), dtype=np.int64)
        known = rows >= 0
        self.unknown += int(np.count_nonzero(~known))
        words = pc.dictionary_encode(batch.column("prompt"))
        codes = np.array(
            [self.prompts.setdefault(p, len(self.prompts)) for p in words.dictionary.to_pylist()],
            dtype=np.int64,
        )
        prompt = codes[np.asarray(words.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
        self._keys.append((prompt[known] << 32) | rows[known])
        self._sums.append(label[known].astype(np.float64))
        self._buffered += int(np.count_nonzero(known))
        if self._buffered >= self.COMPACT:
            self._compact()

    def _fresh(self, ids: pa.Array) -> np.ndarray:
        """Which events are seen for the first time (the first of a repeated id wins)."""
        digest = xxhash.xxh3_64_intdigest
        codes = np.fromiter(
            (digest(i) for i in ids.cast(pa.binary()).to_pylist()), dtype=np.uint64, count=len(ids)
        )
        fresh = self.seen.add(codes)
        self.duplicates += len(ids) - int(np.count_nonzero(fresh))
        return fresh

    def _compact(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.concatenate(self._keys) if self._keys else np.empty(0, np.int64)
        sums = np.concatenate(self._sums) if self._sums else np.empty(0, np.float64)
        pairs, inverse = np.unique(keys, return_inverse=True)
        totals = np.bincount(inverse.ravel(), weights=sums, minlength=len(pairs))
        self._keys, self._sums, self._buffered = [pairs], [totals], len(pairs)
        return pairs, totals

    def examples(self) -> list[Example]:
        """One example per prompt with a non-zero sum for some track, in first-seen order."""
        pairs, totals = self._compact()
        pairs, totals = pairs[totals != 0], totals[totals != 0]
        prompt, rows = pairs >> 32, pairs & 0xFFFFFFFF
        names = list(self.prompts)
        codes, starts = np.unique(prompt, return_index=True)
        stops = np.append(starts[1:], len(prompt)).astype(np.int64)[: len(starts)]
        return [
            Example(title=names[code], rows=rows[a:b].copy(), weights=totals[a:b].copy())
            for code, a, b in zip(codes.tolist(), starts.tolist(), stops.tolist(), strict=True)
        ]


class _SeenIds:
    """The 64-bit hashes of the event ids kept so far, 8 bytes an id: sorted runs, each at
    most half the one before (merged when not), so a lookup is a few binary searches. Two
    distinct ids sharing a hash is vanishingly unlikely (about 1 in 10^7 for 10^6 ids)."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def add(self, codes: np.ndarray) -> np.ndarray:
        """Keep `codes`; which of them were new (the first of a code repeated in `codes`)."""
        # Searched in sorted order, so the binary searches walk each run front to back.
        order = np.argsort(codes, kind="stable")
        ordered = codes[order]
        new = np.ones(len(codes), dtype=bool)
        new[1:] = ordered[1:] != ordered[:-1]
        for run in self.runs:
            at = np.minimum(np.searchsorted(run, ordered), len(run) - 1)
            new &= run[at] != ordered
        fresh = np.zeros(len(codes), dtype=bool)
        fresh[order[new]] = True
        if not new.any():
            return fresh
        self.runs.append(ordered[new])
        while len(self.runs) > 1 and 2 * len(self.runs[-1]) > len(self.runs[-2]):
            last = self.runs.pop()
            self.runs[-1] = np.sort(np.concatenate([self.runs[-1], last]), kind="stable")
        return fresh


# --- reading --------------------------------------------------------------------------------


def _folder(path: str | os.PathLike[str]) -> Path:
    folder = Path(path).resolve()
    if not folder.exists():
        raise CorpusError(f"{folder}: no such event archive folder")
    if not folder.is_dir():
        raise CorpusError(f"{folder}: not a folder (give the archive's folder, not a file in it)")
    return folder


def _fragments(folder: Path) -> list[ds.ParquetFileFragment]:
    """The archive's Parquet files in path order, each checked against the columns read."""
    # Hidden and underscore names (temporary files, `_checkpoints`) are skipped, as the
    # archiver's readers do.
    # The schema is given, so no file is opened before each is checked on its own.
    dataset = ds.dataset(folder, schema=READ_SCHEMA, format="parquet", partitioning="hive")
    fragments = sorted(dataset.get_fragments(), key=lambda f: str(f.path))
    if not fragments:
        raise CorpusError(f"{folder}: no Parquet files (expected region=…/date=…/*.parquet)")
    for fragment in fragments:
        _check_schema(fragment)
    return fragments


def _check_schema(fragment: ds.ParquetFileFragment) -> None:
    try:
        schema = fragment.physical_schema
    except (pa.ArrowException, OSError) as exc:
        raise CorpusError(f"{fragment.path}: not a readable Parquet file: {exc}") from exc
    for field in READ_SCHEMA:
        found = schema.field(field.name).type if field.name in schema.names else None
        if found != field.type:
            what = "missing" if found is None else f"of type {found}"
            raise CorpusError(
                f"{fragment.path}: not an event archive file: column {field.name!r} is {what}, "
                f"expected {field.type}"
            )


def _rows(fragment: ds.ParquetFileFragment) -> int:
    return int(fragment.metadata.num_rows)


def _batches(fragments: Sequence[tuple[Path, ds.ParquetFileFragment]]) -> Iterator[pa.RecordBatch]:
    for _, fragment in fragments:
        try:
            yield from fragment.to_batches(columns=list(COLUMNS), batch_size=BATCH_ROWS)
        except (pa.ArrowException, OSError) as exc:
            raise CorpusError(f"{fragment.path}: cannot read the event archive: {exc}") from exc


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
