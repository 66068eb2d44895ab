"""The archiver against both logs (a real redis-server, the embedded SQLite file): crashes at
every step between reading and acking lose nothing and double nothing; Parquet round-trips."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from redis.asyncio import Redis

from loadtest.redis_server import RedisServer
from regional.archive import SCHEMA, Archiver, read_archive
from regional.events import (
    SCHEMA_VERSION,
    EventIn,
    EventLog,
    LocalEventLog,
    Pseudonymizer,
    RedisEventLog,
)

KEY = b"archive-test-key-0123456789"


@pytest.fixture(params=["local", "redis"])
async def log(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventLog]:
    made: EventLog
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisEventLog(Redis.from_url(server.url), "r1", partitions=3)
    else:
        made = LocalEventLog(tmp_path / "events.sqlite")
    yield made
    await made.close()


async def _fill(log: EventLog, count: int) -> None:
    pseudonymizer = Pseudonymizer(KEY, "r1")
    sent = [
        EventIn(
            event_id=f"event-{n:05d}",
            type="complete" if n % 3 else "skip",
            playlist="fp",
            prompt_key=f"pk{n % 7}",
            track_id=f"t{n}",
            position=n % 30,
            dwell_ms=n * 10,
            ts=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
            user=f"user-{n % 11}",
            prompt="call me on +44 20 7946 0958" if n == 3 else None,
        )
        for n in range(count)
    ]
    assert None not in await log.append([pseudonymizer.stored(e) for e in sent])


class Crash(Exception):
    pass


async def _drain(archiver: Archiver) -> None:
    while await archiver.run_once():
        pass


async def test_crashes_between_write_and_ack_neither_lose_nor_double_events(
    log: EventLog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "archive"
    await _fill(log, 120)

    # 1. Killed after the Parquet file is written, before its checkpoint.
    first = Archiver(log, out, "r1", batch=25)

    def die(_partition: int, _entry: str) -> None:
        raise Crash

    monkeypatch.setattr(first, "_set_checkpoint", die)
    with pytest.raises(Crash):
        await first.run_once()

    # 2. Its successor (same consumer name, as after a restart) is killed after the
    #    checkpoint, before the ack.
    second = Archiver(log, out, "r1", batch=25)
    real_ack = log.ack
    calls = {"n": 0}

    async def ack_then_die(group: str, deliveries: object) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash
        await real_ack(group, deliveries)  # type: ignore[arg-type]

    monkeypatch.setattr(log, "ack", ack_then_die)
    with pytest.raises(Crash):
        await _drain(second)
    monkeypatch.setattr(log, "ack", real_ack)

    # 3. A third one finishes the job.
    third = Archiver(log, out, "r1", batch=25)
    await _drain(third)

    table = read_archive(out)
    ids = table.column("event_id").to_pylist()
    assert len(ids) == 120  # every accepted event ...
    assert len(set(ids)) == 120  # ... once
    assert await log.pending("archive", "archiver", 500) == []


async def test_parquet_files_round_trip_with_schema_and_metadata(
    log: EventLog, tmp_path: Path
) -> None:
    out = tmp_path / "archive"
    await _fill(log, 10)
    archiver = Archiver(log, out, "r1")
    await _drain(archiver)
    files = sorted(out.glob("region=r1/date=*/part-*.parquet"))
    assert files
    assert not list(out.rglob(".*.tmp"))  # nothing half-written left behind
    for path in files:
        parquet = pq.ParquetFile(path)
        assert parquet.schema_arrow.remove_metadata() == SCHEMA
        meta = parquet.schema_arrow.metadata
        assert meta[b"schema_version"] == str(SCHEMA_VERSION).encode()
        assert meta[b"region"] == b"r1"
        assert parquet.metadata.row_group(0).column(0).compression == "ZSTD"
    rows = read_archive(out).to_pylist()
    by_id = {row["event_id"]: row for row in rows}
    sample = by_id["event-00003"]
    assert sample["prompt"] == "call me on [number]"
    assert sample["user"] != "user-3" and len(sample["user"]) == 32  # noqa: PT018
    assert sample["client_time"] == datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    assert sample["dwell_ms"] == 30


async def test_archived_events_older_than_the_retention_leave_the_log(
    log: EventLog, tmp_path: Path
) -> None:
    await _fill(log, 12)
    now = [datetime.now(UTC).timestamp()]
    archiver = Archiver(log, tmp_path / "archive", "r1", retention=3600, clock=lambda: now[0])
    await _drain(archiver)
    assert await log.length() == 12  # archived, but younger than the retention
    now[0] += 7200
    await archiver.run_once()  # an idle pass still trims
    assert await log.length() == 0
    assert read_archive(tmp_path / "archive").num_rows == 12
