"""`LocalEventLog`: the embedded event log, one SQLite file, for a node without Redis.

Stdlib `sqlite3` in WAL mode, `synchronous=FULL` unless told otherwise, with the interface
and semantics of the Redis log's consumer groups. A failing database (locked, full, broken)
raises `LogUnavailable`, as the Redis log does when Redis fails.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from regional.errors import LogUnavailable
from regional.events.log import Delivery, Entry, id_order
from regional.events.schema import Event, encode_event, read_event

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, ms INTEGER NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS groups (name TEXT PRIMARY KEY, last INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending (
    grp TEXT NOT NULL, seq INTEGER NOT NULL, consumer TEXT NOT NULL, delivered REAL NOT NULL,
    PRIMARY KEY (grp, seq));
"""


class LocalEventLog:
    """The embedded event log: one SQLite file, one partition, the same semantics as Redis
    Streams with consumer groups (ids are "seq-0", in order)."""

    partitions = 1

    def __init__(
        self,
        path: Path,
        *,
        dedupe_seconds: float = 86_400,
        sync: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.dedupe_seconds = dedupe_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
        self._db.executescript(_SCHEMA)

    def partition_of(self, user: str) -> int:
        return 0

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(self._db)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
                return result

        try:
            return await asyncio.to_thread(locked)
        except (sqlite3.Error, OSError) as exc:
            raise LogUnavailable(f"event log: {exc!r}") from exc

    async def append(self, events: Sequence[Event]) -> list[str | None]:
        now = self._clock()

        def write(db: sqlite3.Connection) -> list[str | None]:
            db.execute("DELETE FROM seen WHERE until < ?", (now,))
            ids: list[str | None] = []
            for event in events:
                fresh = db.execute(
                    "INSERT OR IGNORE INTO seen VALUES (?, ?)",
                    (event.event_id, now + self.dedupe_seconds),
                ).rowcount
                if not fresh:
                    ids.append(None)
                    continue
                seq = db.execute(
                    "INSERT INTO events (ms, body) VALUES (?, ?)",
                    (event.received_ms, encode_event(event)),
                )
                ids.append(f"{seq.lastrowid}-0")
            return ids

        return await self._run(write)

    async def ensure_group(self, group: str) -> None:
        await self._run(
            lambda db: db.execute("INSERT OR IGNORE INTO groups VALUES (?, 0)", (group,))
        )

    def _rows(self, rows: list[tuple[int, bytes]]) -> list[Entry]:
        return [Entry(0, f"{seq}-0", read_event(body)) for seq, body in rows]

    async def read(self, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Entry]:
        now = self._clock()

        def take(db: sqlite3.Connection) -> list[tuple[int, bytes]]:
            (last,) = db.execute("SELECT last FROM groups WHERE name = ?", (group,)).fetchone()
            rows = db.execute(
                "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (last, count)
            ).fetchall()
            if rows:
                db.execute("UPDATE groups SET last = ? WHERE name = ?", (rows[-1][0], group))
                db.executemany(
                    "INSERT INTO pending VALUES (?, ?, ?, ?)",
                    [(group, seq, consumer, now) for seq, _ in rows],
                )
            return rows

        rows: list[tuple[int, bytes]] = await self._run(take)
        if not rows and block_ms:
            await asyncio.sleep(block_ms / 1000)
        return self._rows(rows)

    async def pending(self, group: str, consumer: str, count: int) -> list[Entry]:
        def held(db: sqlite3.Connection) -> list[tuple[int, bytes]]:
            return db.execute(
                "SELECT e.seq, e.body FROM pending p JOIN events e ON e.seq = p.seq "
                "WHERE p.grp = ? AND p.consumer = ? ORDER BY p.seq LIMIT ?",
                (group, consumer, count),
            ).fetchall()

        return self._rows(await self._run(held))

    async def claim(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        now = self._clock()

        def steal(db: sqlite3.Connection) -> list[tuple[int, bytes]]:
            rows = db.execute(
                "SELECT e.seq, e.body FROM pending p JOIN events e ON e.seq = p.seq "
                "WHERE p.grp = ? AND p.delivered <= ? ORDER BY p.seq LIMIT ?",
                (group, now - min_idle_ms / 1000, count),
            ).fetchall()
            db.executemany(
                "UPDATE pending SET consumer = ?, delivered = ? WHERE grp = ? AND seq = ?",
                [(consumer, now, group, seq) for seq, _ in rows],
            )
            return rows

        return self._rows(await self._run(steal))

    async def ack(self, group: str, deliveries: Sequence[Entry | Delivery]) -> None:
        seqs = [(group, id_order(d.id)[0]) for d in deliveries]
        await self._run(
            lambda db: db.executemany("DELETE FROM pending WHERE grp = ? AND seq = ?", seqs)
        )

    async def trim(self, partition: int, archived: str, before_ms: int) -> int:
        last = id_order(archived)[0]
        return await self._run(
            lambda db: int(
                db.execute(
                    "DELETE FROM events WHERE seq <= ? AND ms < ?", (last, before_ms)
                ).rowcount
            )
        )

    async def length(self) -> int:
        return await self._run(
            lambda db: int(db.execute("SELECT count(*) FROM events").fetchone()[0])
        )

    async def close(self) -> None:
        with self._lock:
            self._db.close()
