"""Listener events: what is stored, how users and prompts are made safe, and the region's log.

An accepted event is stored as an `Event`: the user token replaced by a keyed hash
(HMAC-SHA256 with a secret from settings, so nobody without the key can link a hash to a
token, and every edge of a region computes the same hash), prompt text PII-masked, the
region and the time it was received added. Events go to the region's `EventLog`:

- `RedisEventLog`: Redis Streams, one per partition (a hash of the user picks it, so one busy
  user cannot hold up the others), with an approximate MAXLEN bound; consumer groups give
  at-least-once delivery, pending entries and claims of what a crashed consumer held. A
  duplicate `event_id` within the dedupe window is accepted once (a `SET NX` in the same
  script as the `XADD`). Stream and dedupe keys share a hash tag, so Cluster works.
- `LocalEventLog`: the embedded default, one SQLite file (stdlib `sqlite3`, WAL,
  `synchronous=FULL` unless told otherwise) with the same interface, for a node without Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, TypeVar

import msgspec
import xxhash
from msgspec import Meta
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from regional.connections import run_script

T = TypeVar("T")

SCHEMA_VERSION = 1
"""Version of the stored event record (and of the archive's Parquet schema)."""

EventType = Literal["play", "skip", "complete", "save", "thumb_up", "thumb_down"]
_Token = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]


class EventIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One event as a client sends it."""

    event_id: Annotated[str, Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    type: EventType
    playlist: _Token
    """The playlist's fingerprint (its ETag without quotes)."""
    prompt_key: _Token
    """The answer's `prompt_key` (also its `p:` Surrogate-Key tag)."""
    track_id: _Token
    position: Annotated[int, Meta(ge=0, le=10_000)]
    dwell_ms: Annotated[int, Meta(ge=0, le=86_400_000)] = 0
    ts: Annotated[datetime, Meta(tz=True)]
    """When it happened on the client (RFC 3339 with an offset)."""
    user: Annotated[str, Meta(min_length=1, max_length=256)]
    prompt: Annotated[str, Meta(max_length=500)] = ""
    """The prompt the playlist answered, if the client has it (stored masked)."""


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored: pseudonymous, masked, stamped."""

    event_id: str
    type: str
    playlist: str
    prompt_key: str
    track_id: str
    position: int
    dwell_ms: int
    client_ms: int
    user: str
    """Keyed hash of the user token."""
    prompt: str
    """The prompt text with e-mail addresses, phone numbers, URLs, handles and long numbers
    masked; empty when the client sent none."""
    region: str
    received_ms: int
    v: int = SCHEMA_VERSION


_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(Event).decode

_MASKS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE), "[url]"),
    (re.compile(r"(?<!\w)@\w{2,}"), "[handle]"),
    (re.compile(r"\+?\d[\d ()./-]{5,}\d"), "[number]"),
)


def mask_pii(text: str) -> str:
    """Prompt text with what could identify a person replaced by placeholders."""
    for pattern, placeholder in _MASKS:
        text = pattern.sub(placeholder, text)
    return text


class Pseudonymizer:
    """Turns client events into stored ones for one region, with the region's user-hash key."""

    def __init__(self, key: bytes, region: str, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("the user-hash key must have at least 16 bytes")
        self._key = key
        self.region = region
        self._clock = clock

    def user(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()[:32]

    def stored(self, event: EventIn) -> Event:
        return Event(
            event_id=event.event_id,
            type=event.type,
            playlist=event.playlist,
            prompt_key=event.prompt_key,
            track_id=event.track_id,
            position=event.position,
            dwell_ms=event.dwell_ms,
            client_ms=int(event.ts.timestamp() * 1000),
            user=self.user(event.user),
            prompt=mask_pii(event.prompt) if event.prompt else "",
            region=self.region,
            received_ms=int(self._clock() * 1000),
        )


def load_or_make_key(path: Path) -> bytes:
    """The user-hash key kept in `path`, made (32 random bytes, mode 0600) if it is absent.

    For a single node without a configured key: its hashes stay stable across restarts.
    A region of several edges must share one key through settings instead.
    """
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under another name, then linked into place: workers starting together
    # never read a half-written key, and the first link wins for all of them.
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    with open(draft, "w", opener=lambda name, flags: os.open(name, flags, 0o600)) as out:
        out.write(os.urandom(32).hex())
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return bytes.fromhex(path.read_text().strip())


class Entry(msgspec.Struct, frozen=True):
    """An entry of the log as read: ack it by (partition, id) once handled."""

    partition: int
    id: str
    event: Event | None
    """None when the stored bytes are not a readable event (acked and skipped, never
    retried: it would fail the same way every time)."""


class Delivery(msgspec.Struct, frozen=True):
    """A readable entry, as consumers' handlers get it."""

    partition: int
    id: str
    event: Event


def _read_event(raw: bytes | str) -> Event | None:
    try:
        return _decode(raw)
    except msgspec.DecodeError:
        return None


def id_order(entry_id: str) -> tuple[int, int]:
    """Stream ids ("ms-seq") in their order."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class EventLog(Protocol):
    partitions: int

    def partition_of(self, user: str) -> int: ...

    async def append(self, events: Sequence[Event]) -> list[str | None]:
        """Store new events; per event its entry id, or None for a duplicate `event_id`."""
        ...

    async def ensure_group(self, group: str) -> None: ...

    async def read(self, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Entry]:
        """Entries no consumer of `group` has been given yet (at most `count`)."""
        ...

    async def pending(self, group: str, consumer: str, count: int) -> list[Entry]:
        """Entries given to `consumer` and not acked (what it held when it crashed)."""
        ...

    async def claim(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        """Entries other consumers of `group` got and left unacked for `min_idle_ms`."""
        ...

    async def ack(self, group: str, deliveries: Sequence[Entry | Delivery]) -> None: ...

    async def trim(self, partition: int, archived: str, before_ms: int) -> int:
        """Drop entries of `partition` up to `archived` (inclusive) that were added before
        `before_ms` (epoch milliseconds); how many went."""
        ...

    async def length(self) -> int: ...

    async def close(self) -> None: ...


def _partition(user: str, partitions: int) -> int:
    return xxhash.xxh3_64_intdigest(user.encode()) % partitions


# Dedupe and append in one step: a retried batch can neither lose nor double an event.
_APPEND = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[3])
end
return false
"""


class RedisEventLog:
    """Per-region, partitioned Redis Streams (see the module docstring)."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        region: str,
        *,
        partitions: int = 8,
        maxlen: int = 1_000_000,
        dedupe_seconds: int = 86_400,
    ) -> None:
        self.client = client
        self.region = region
        self.partitions = partitions
        self.maxlen = maxlen
        self.dedupe_seconds = dedupe_seconds
        self._append = client.register_script(_APPEND)

    def _stream(self, partition: int) -> str:
        return f"events:{{{self.region}:{partition}}}"

    def _seen(self, partition: int, event_id: str) -> str:
        return f"events:{{{self.region}:{partition}}}:seen:{event_id}"

    def partition_of(self, user: str) -> int:
        return _partition(user, self.partitions)

    async def append(self, events: Sequence[Event]) -> list[str | None]:
        calls = []
        for event in events:
            p = self.partition_of(event.user)
            calls.append(
                (
                    [self._stream(p), self._seen(p, event.event_id)],
                    [self.dedupe_seconds, self.maxlen, _encode(event)],
                )
            )
        results = await run_script(self.client, self._append, calls)
        return [_text(r) if r else None for r in results]

    async def ensure_group(self, group: str) -> None:
        for p in range(self.partitions):
            try:
                await self.client.xgroup_create(self._stream(p), group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _deliveries(self, partition: int, entries: Sequence[tuple[object, object]]) -> list[Entry]:
        found = []
        for entry_id, fields in entries:
            raw = fields.get(b"e") if isinstance(fields, dict) else None
            if raw is None:
                continue  # trimmed away while pending
            found.append(Entry(partition, _text(entry_id), _read_event(raw)))
        return found

    async def read(self, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Entry]:
        found = await self._each_partition(group, consumer, ">", count)
        if found or not block_ms:
            return found
        if isinstance(self.client, RedisCluster):
            await asyncio.sleep(block_ms / 1000)  # partitions live on several nodes
            return found
        # Idle: one XREADGROUP over every partition, which returns as soon as any has news.
        streams: dict[Any, Any] = {self._stream(p): ">" for p in range(self.partitions)}
        per_stream = max(1, count // self.partitions)  # COUNT applies to each stream
        reply: Any = await self.client.xreadgroup(
            group, consumer, streams, count=per_stream, block=block_ms
        )
        for stream, entries in reply or []:
            found += self._deliveries(self._partition_of_stream(_text(stream)), entries)
        return found

    def _partition_of_stream(self, name: str) -> int:
        return int(name.rsplit(":", 1)[1].rstrip("}"))

    async def pending(self, group: str, consumer: str, count: int) -> list[Entry]:
        return await self._each_partition(group, consumer, "0", count)

    async def _each_partition(
        self, group: str, consumer: str, start: str, count: int
    ) -> list[Entry]:
        """XREADGROUP from `start` (">": new entries, "0": this consumer's pending ones) on
        each partition in turn, until `count` are found."""
        found: list[Entry] = []
        for p in range(self.partitions):
            reply: Any = await self.client.xreadgroup(
                group, consumer, {self._stream(p): start}, count=count - len(found)
            )
            for _stream, entries in reply or []:
                found += self._deliveries(p, entries)
            if len(found) >= count:
                break
        return found

    async def claim(self, group: str, consumer: str, min_idle_ms: int, count: int) -> list[Entry]:
        found: list[Entry] = []
        for p in range(self.partitions):
            reply: Any = await self.client.xautoclaim(
                self._stream(p), group, consumer, min_idle_ms, "0-0", count=count - len(found)
            )
            found += self._deliveries(p, reply[1])
            if len(found) >= count:
                break
        return found

    async def ack(self, group: str, deliveries: Sequence[Entry | Delivery]) -> None:
        by_partition: dict[int, list[str]] = {}
        for d in deliveries:
            by_partition.setdefault(d.partition, []).append(d.id)
        for p, ids in by_partition.items():
            await self.client.xack(self._stream(p), group, *ids)

    async def trim(self, partition: int, archived: str, before_ms: int) -> int:
        ms, seq = id_order(archived)
        # XTRIM MINID drops ids below it; Redis ids start with the time they were added.
        keep_from = min((ms, seq + 1), (before_ms, 0))
        stream = self._stream(partition)
        minid = f"{keep_from[0]}-{keep_from[1]}"
        return int(await self.client.xtrim(stream, minid=minid, approximate=False))

    async def length(self) -> int:
        return sum([int(await self.client.xlen(self._stream(p))) for p in range(self.partitions)])

    async def close(self) -> None:
        await self.client.aclose()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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

        return await asyncio.to_thread(locked)

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
                    (event.received_ms, _encode(event)),
                )
                ids.append(f"{seq.lastrowid}-0")
            return ids

        return await self._run(write)

    async def ensure_group(self, group: str) -> None:
        await self._run(
            lambda db: db.execute("INSERT OR IGNORE INTO groups VALUES (?, 0)", (group,))
        )

    def _rows(self, rows: list[tuple[int, bytes]]) -> list[Entry]:
        return [Entry(0, f"{seq}-0", _read_event(body)) for seq, body in rows]

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
