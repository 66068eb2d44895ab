"""The archiver: the region's event log, drained into Parquet files for retraining.

Files are written under `out/region=<region>/date=<YYYY-MM-DD>/` (the received date, UTC; the
layout pyarrow.dataset and DuckDB read as hive partitions), zstd-compressed, with the schema
version and region in the file metadata. Each batch is written to a temporary name, fsynced,
renamed and its directory fsynced; only then is a per-partition checkpoint (the last entry id
archived) replaced the same way, and only then are the entries acked. A crash anywhere in
between redelivers the batch: entries at or below the checkpoint are acked without being
written again, so the archive holds each accepted event exactly once.

One archiver per region: the checkpoint assumes a partition's entries are archived in order.
Entries older than `retention` seconds that are archived are trimmed from the log.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from regional.consumers import Consumer
from regional.events import SCHEMA_VERSION, Delivery, EventLog, id_order

log = logging.getLogger("regional.archive")

SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
        pa.field("playlist", pa.string(), nullable=False),
        pa.field("prompt_key", pa.string(), nullable=False),
        pa.field("track_id", pa.string(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("dwell_ms", pa.int64(), nullable=False),
        pa.field("client_time", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("received_time", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("user", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("region", pa.string(), nullable=False),
        pa.field("stream_id", pa.string(), nullable=False),
    ]
)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace_durably(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, final)
    _fsync_dir(final.parent)


class Archiver:
    def __init__(
        self,
        events: EventLog,
        out: Path,
        region: str,
        *,
        batch: int = 2000,
        retention: float = 86_400,
        clock: Callable[[], float] = time.time,
        consumer: str = "archiver",
    ) -> None:
        self.events = events
        self.out = out
        self.region = region
        self.retention = retention
        self._clock = clock
        self.written = 0
        self.files = 0
        self._checkpoints = out / "_checkpoints" / f"region={region}"
        self._trimmed_at = float("-inf")
        self.consumer = Consumer(
            events, "archive", consumer, self._archive, batch=batch, after=self._trim
        )

    def checkpoint(self, partition: int) -> str | None:
        try:
            return (self._checkpoints / f"{partition}.id").read_text().strip() or None
        except FileNotFoundError:
            return None

    def _set_checkpoint(self, partition: int, entry_id: str) -> None:
        self._checkpoints.mkdir(parents=True, exist_ok=True)
        tmp = self._checkpoints / f".{partition}.id.tmp"
        tmp.write_text(entry_id)
        _replace_durably(tmp, self._checkpoints / f"{partition}.id")

    async def _archive(self, deliveries: Sequence[Delivery]) -> None:
        by_partition: dict[int, list[Delivery]] = defaultdict(list)
        for d in deliveries:
            by_partition[d.partition].append(d)
        for partition, batch in by_partition.items():
            done = self.checkpoint(partition)
            fresh = sorted(
                (d for d in batch if done is None or id_order(d.id) > id_order(done)),
                key=lambda d: id_order(d.id),
            )
            if fresh:
                self._write(partition, fresh)
                self._set_checkpoint(partition, fresh[-1].id)

    def _write(self, partition: int, batch: list[Delivery]) -> None:
        by_date: dict[str, list[Delivery]] = defaultdict(list)
        for d in batch:
            day = datetime.fromtimestamp(d.event.received_ms / 1000, UTC).date().isoformat()
            by_date[day].append(d)
        for day, rows in by_date.items():
            folder = self.out / f"region={self.region}" / f"date={day}"
            folder.mkdir(parents=True, exist_ok=True)
            name = f"part-{partition}-{rows[0].id}-{rows[-1].id}.parquet"
            table = pa.Table.from_pylist(
                [
                    {
                        "event_id": d.event.event_id,
                        "type": d.event.type,
                        "playlist": d.event.playlist,
                        "prompt_key": d.event.prompt_key,
                        "track_id": d.event.track_id,
                        "position": d.event.position,
                        "dwell_ms": d.event.dwell_ms,
                        "client_time": d.event.client_ms,
                        "received_time": d.event.received_ms,
                        "user": d.event.user,
                        "prompt": d.event.prompt,
                        "region": d.event.region,
                        "stream_id": d.id,
                    }
                    for d in rows
                ],
                schema=SCHEMA.with_metadata(
                    {"schema_version": str(SCHEMA_VERSION), "region": self.region}
                ),
            )
            tmp = folder / f".{name}.tmp"
            pq.write_table(table, tmp, compression="zstd")
            _replace_durably(tmp, folder / name)
            self.written += len(rows)
            self.files += 1

    async def _trim(self) -> None:
        """Drop archived entries older than the retention from the log (every 10 s at most)."""
        now = self._clock()
        if now - self._trimmed_at < 10:
            return
        self._trimmed_at = now
        before_ms = int((now - self.retention) * 1000)
        for partition in range(self.events.partitions):
            done = self.checkpoint(partition)
            if done is not None:
                await self.events.trim(partition, done, before_ms)

    async def run_once(self) -> int:
        return await self.consumer.run_once()

    async def run(self) -> None:
        await self.consumer.run()


def read_archive(out: Path) -> pa.Table:
    """Every archived event under `out` (for tests and a quick look)."""
    files = sorted(out.glob("region=*/date=*/*.parquet"))
    if not files:
        return SCHEMA.empty_table()
    return pa.concat_tables(pq.read_table(f, schema=SCHEMA) for f in files)


def describe(out: Path) -> str:
    table = read_archive(out)
    return json.dumps({"events": table.num_rows, "files": len(list(out.rglob("*.parquet")))})
