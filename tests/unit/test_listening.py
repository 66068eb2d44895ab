"""Listener events as training examples: archives read column by column, events kept once,
labelled by rules v1 (the same rules as the region's prompt labels), summed per prompt and
catalog track, with a summary that holds counts and a time range and nothing personal."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from models import listening
from models.errors import CorpusError
from models.listening import LABEL_RULES_VERSION, READ_SCHEMA, event_examples, labels
from regional import consumers
from regional.archive import SCHEMA, Archiver
from regional.events import EventIn, LocalEventLog, Pseudonymizer

from ..clock import FakeClock

CATALOG = {f"t{n}": n for n in range(10)}
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def lookup(track_ids: Sequence[str]) -> np.ndarray:
    return np.array([CATALOG.get(t, -1) for t in track_ids], dtype=np.int64)


def row(event_id: str, type_: str, track: str, prompt: str, **extra: Any) -> dict[str, Any]:
    base = {
        "event_id": event_id,
        "type": type_,
        "playlist": "fp",
        "prompt_key": "pk",
        "track_id": track,
        "position": 0,
        "dwell_ms": 0,
        "client_time": T0,
        "received_time": T0,
        "user": "5f0c9a1e",
        "prompt": prompt,
        "region": "r1",
        "stream_id": "1-0",
    }
    return {**base, **extra}


def write(folder: Path, name: str, rows: list[dict[str, Any]], day: str = "2026-11-23") -> Path:
    """One archive file where the archiver puts it."""
    part = folder / "region=r1" / f"date={day}"
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), part / name, compression="zstd")
    return part / name


def by_title(examples: list[Any]) -> dict[str, dict[int, float]]:
    return {e.title: dict(zip(e.rows.tolist(), e.weights.tolist(), strict=True)) for e in examples}


def test_rules_v1_agree_with_the_regions_prompt_labels() -> None:
    """Every event type at every dwell boundary gets the same label from the vectorised rules
    as from `regional.consumers.label_of`, and both name one rules version."""
    types = ["play", "skip", "complete", "save", "thumb_up", "thumb_down"]
    dwells = [0, 1, 29_999, 30_000, 30_001, 86_400_000]
    cases = [(t, d) for t in types for d in dwells]
    got = labels(pa.array([t for t, _ in cases]), pa.array([d for _, d in cases], pa.int64()))
    for (type_, dwell), label in zip(cases, got.tolist(), strict=True):
        stored = _stored(type_, dwell)
        expected = {"accept": 1, "reject": -1, None: 0}[consumers.label_of(stored)]
        assert label == expected, (type_, dwell)
    custom = labels(pa.array(["skip", "skip"]), pa.array([4_000, 5_000], pa.int64()), 5_000)
    assert custom.tolist() == [
        {"reject": -1, None: 0}[consumers.label_of(_stored("skip", d), 5_000)]
        for d in (4_000, 5_000)
    ]
    assert consumers.LABEL_RULES_VERSION == LABEL_RULES_VERSION == 1


def _stored(type_: str, dwell: int) -> Any:
    event = EventIn(
        event_id="evt-00000001",
        type=type_,  # type: ignore[arg-type]
        playlist="fp",
        prompt_key="pk",
        track_id="t0",
        position=0,
        dwell_ms=dwell,
        ts=T0,
        user="u",
    )
    return Pseudonymizer(b"k" * 16, "r1").stored(event)


def test_the_columns_read_are_the_archivers_columns() -> None:
    """What training reads has the archive's names and types, and no user or stream id."""
    for field in READ_SCHEMA:
        assert SCHEMA.field(field.name).type == field.type
    assert not {"user", "stream_id"} & set(READ_SCHEMA.names)


def test_labels_sum_per_prompt_and_track(tmp_path: Path) -> None:
    """Accepts add one, rejects take one away, plays and late skips say nothing; sums that
    cancel out leave no entry; each prompt is one example."""
    write(
        tmp_path,
        "part-0.parquet",
        [
            row("e01", "save", "t1", "rainy jazz"),
            row("e02", "complete", "t1", "rainy jazz"),
            row("e03", "thumb_up", "t2", "rainy jazz"),
            row("e04", "skip", "t3", "rainy jazz", dwell_ms=2_000),
            row("e05", "skip", "t4", "rainy jazz", dwell_ms=45_000),
            row("e06", "play", "t5", "rainy jazz"),
            row("e07", "thumb_down", "t2", "gym"),
            row("e08", "save", "t6", "gym"),
            row("e09", "skip", "t6", "gym", dwell_ms=10),
        ],
    )
    examples, summary = event_examples([tmp_path], lookup, progress=False)
    assert by_title(examples) == {"rainy jazz": {1: 2.0, 2: 1.0, 3: -1.0}, "gym": {2: -1.0}}
    for example in examples:
        assert example.rows.dtype == np.int64
        assert example.weights is not None
        assert example.weights.dtype == np.float64
    assert (summary["accepts"], summary["rejects"], summary["prompts"]) == (4, 3, 2)
    assert (summary["events"], summary["duplicates"]) == (9, 0)


def test_events_are_kept_once_across_files_and_overlapping_archives(tmp_path: Path) -> None:
    """An event id seen again, in the same folder or another archive, counts once: the
    first seen wins."""
    one, two = tmp_path / "one", tmp_path / "two"
    write(one, "part-0.parquet", [row("e1", "save", "t1", "focus")])
    write(
        one, "part-1.parquet", [row("e1", "save", "t1", "focus"), row("e2", "save", "t2", "focus")]
    )
    write(
        two,
        "part-0.parquet",
        [row("e2", "thumb_down", "t2", "focus"), row("e3", "save", "t3", "focus")],
    )
    examples, summary = event_examples([one, two], lookup, progress=False)
    assert by_title(examples) == {"focus": {1: 1.0, 2: 1.0, 3: 1.0}}
    assert (summary["events"], summary["duplicates"], summary["files"]) == (5, 2, 3)
    assert summary["archives"] == [str(one.resolve()), str(two.resolve())]


def test_unknown_tracks_and_events_without_a_prompt_are_dropped_and_counted(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "part-0.parquet",
        [
            row("e1", "save", "t1", "calm"),
            row("e2", "save", "gone", "calm"),
            row("e3", "save", "t2", ""),
            row("e4", "play", "gone", "calm"),  # unlabelled: not looked up, not counted
        ],
    )
    examples, summary = event_examples([tmp_path], lookup, progress=False)
    assert by_title(examples) == {"calm": {1: 1.0}}
    assert (summary["unknown_tracks"], summary["without_prompt"]) == (1, 1)


def test_the_summary_is_json_with_a_utc_time_range_and_nothing_personal(tmp_path: Path) -> None:
    early, late = datetime(2026, 11, 22, 23, 59, tzinfo=UTC), datetime(2026, 11, 24, 8, tzinfo=UTC)
    write(tmp_path, "a.parquet", [row("e1", "save", "t1", "x", received_time=early)], "2026-11-22")
    write(tmp_path, "b.parquet", [row("e2", "save", "t1", "x", received_time=late)], "2026-11-24")
    examples, summary = event_examples([tmp_path], lookup, progress=False)
    text = json.dumps(summary)
    assert summary["first_received"] == "2026-11-22T23:59:00.000+00:00"
    assert summary["last_received"] == "2026-11-24T08:00:00.000+00:00"
    assert summary["label_rules_version"] == LABEL_RULES_VERSION
    assert "5f0c9a1e" not in text  # no user hash ...
    assert "1-0" not in text  # ... and no stream id
    assert [e.title for e in examples] == ["x"]


def test_archives_read_in_batches_give_the_same_sums(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sums do not depend on how the files are cut into batches or when they are summed."""
    rows = [
        row(f"e{n}", "save" if n % 3 else "thumb_down", f"t{n % 4}", f"p{n % 3}") for n in range(40)
    ]
    write(tmp_path, "part-0.parquet", rows)
    whole, _ = event_examples([tmp_path], lookup, progress=False)
    monkeypatch.setattr(listening, "BATCH_ROWS", 7)
    monkeypatch.setattr(listening._Tally, "COMPACT", 5)
    cut, _ = event_examples([tmp_path], lookup, progress=True)  # the bar changes nothing
    assert by_title(cut) == by_title(whole)


async def test_an_archive_written_by_the_archiver_reads_back(tmp_path: Path) -> None:
    """The archiver's own files (hive folders, checkpoints beside them) are what is read."""
    clock = FakeClock(T0.timestamp())
    log = LocalEventLog(tmp_path / "events.sqlite")
    sent = [
        EventIn(
            event_id=f"event-{n:04d}",
            type="skip" if n % 3 == 2 else "save",
            playlist="fp",
            prompt_key="pk",
            track_id=f"t{n % 3}",
            position=n,
            dwell_ms=1_000,
            ts=T0,
            user=f"listener-{n}",
            prompt="sunday morning coffee",
        )
        for n in range(12)
    ]
    await log.append([Pseudonymizer(b"k" * 16, "r1", clock).stored(e) for e in sent])
    archiver = Archiver(log, tmp_path / "archive", "r1", clock=clock)
    while await archiver.run_once():
        pass
    await log.close()
    examples, summary = event_examples([tmp_path / "archive"], lookup, progress=False)
    assert by_title(examples) == {"sunday morning coffee": {0: 4.0, 1: 4.0, 2: -4.0}}
    assert (summary["events"], summary["files"]) == (12, archiver.files)
    assert summary["first_received"] == T0.isoformat(timespec="milliseconds")


def test_bad_archives_are_refused_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="no such event archive folder"):
        event_examples([tmp_path / "nowhere"], lookup, progress=False)
    with pytest.raises(CorpusError, match="no event archive given"):
        event_examples([], lookup, progress=False)
    with pytest.raises(CorpusError, match="not a folder"):
        event_examples([write(tmp_path / "f", "a.parquet", [row("e1", "save", "t1", "x")])], lookup)
    empty = tmp_path / "empty"
    (empty / "region=r1" / "date=2026-11-23").mkdir(parents=True)
    with pytest.raises(CorpusError, match="no Parquet files"):
        event_examples([empty], lookup, progress=False)

    wrong = tmp_path / "wrong"
    part = wrong / "region=r1" / "date=2026-11-23"
    part.mkdir(parents=True)
    pq.write_table(pa.table({"event_id": ["e1"], "type": ["save"]}), part / "odd.parquet")
    with pytest.raises(CorpusError, match=r"odd\.parquet.*'dwell_ms' is missing"):
        event_examples([wrong], lookup, progress=False)

    typed = tmp_path / "typed"
    table = pa.Table.from_pylist([row("e1", "save", "t1", "x")], schema=SCHEMA)
    table = table.set_column(table.schema.get_field_index("dwell_ms"), "dwell_ms", pa.array(["0"]))
    write(typed, "ok.parquet", [row("e0", "save", "t1", "x")])
    pq.write_table(table, typed / "region=r1" / "date=2026-11-23" / "typed.parquet")
    with pytest.raises(CorpusError, match=r"typed\.parquet.*'dwell_ms' is of type string"):
        event_examples([typed], lookup, progress=False)

    broken = tmp_path / "broken"
    good = write(broken, "a.parquet", [row("e1", "save", "t1", "x")])
    (good.parent / "b.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    with pytest.raises(CorpusError, match=r"b\.parquet"):
        event_examples([broken], lookup, progress=False)

    cut = tmp_path / "cut"
    whole = write(cut, "c.parquet", [row(f"e{n}", "save", "t1", "x") for n in range(100)])
    data = whole.read_bytes()
    whole.write_bytes(data[:8] + bytes(len(data) - 16) + data[-8:])  # footer kept, pages zeroed
    with pytest.raises(CorpusError, match=r"c\.parquet"):
        event_examples([cut], lookup, progress=False)


def test_an_archive_without_labels_gives_no_examples(tmp_path: Path) -> None:
    write(
        tmp_path,
        "p.parquet",
        [row("e1", "play", "t1", "x"), row("e2", "skip", "t1", "x", dwell_ms=60_000)],
    )
    examples, summary = event_examples([tmp_path], lookup, progress=False)
    assert examples == []
    assert (summary["events"], summary["accepts"], summary["rejects"]) == (2, 0, 0)


def test_seen_ids_keep_the_first_of_each_id_over_many_batches() -> None:
    """The sorted runs answer like a set: batches of repeats, whole batches seen before."""
    rng = np.random.default_rng(5)
    seen, reference = listening._SeenIds(), set()
    for size in [50, 50, 0, 120, 7, 300, 1, 64]:
        codes = rng.integers(0, 400, size).astype(np.uint64)
        expected = []
        for code in codes.tolist():
            expected.append(code not in reference)
            reference.add(code)
        assert seen.add(codes).tolist() == expected
        repeated = np.array(sorted(reference), dtype=np.uint64)
        assert not seen.add(repeated).any()  # all seen before: nothing new, nothing kept
    runs = [len(r) for r in seen.runs]
    assert sum(runs) == len(reference)
    assert all(2 * b <= a for a, b in itertools.pairwise(runs))
