"""`RedisEventLog`: the region's event log on Redis Streams, one stream per partition.

A hash of the user picks the partition, so one busy user cannot hold up the others; each
stream has an approximate MAXLEN bound. Consumer groups give at-least-once delivery, pending
entries and claims of what a crashed consumer held. A duplicate `event_id` within the dedupe
window is accepted once (a `SET NX` in the same script as the `XADD`). Stream and dedupe keys
share a hash tag, so Cluster works. A Redis failure raises `LogUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

import xxhash
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from regional.connections import run_script, translate_redis_errors
from regional.errors import LogUnavailable
from regional.events.log import Delivery, Entry, id_order
from regional.events.schema import Event, encode_event, read_event


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
                    [self.dedupe_seconds, self.maxlen, encode_event(event)],
                )
            )
        with _translated("append"):
            results = await run_script(self.client, self._append, calls)
        return [_text(r) if r else None for r in results]

    async def ensure_group(self, group: str) -> None:
        with _translated("ensure_group"):
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
            found.append(Entry(partition, _text(entry_id), read_event(raw)))
        return found

    async def read(self, group: str, consumer: str, count: int, block_ms: int = 0) -> list[Entry]:
        with _translated("read"):
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
        with _translated("pending"):
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
        with _translated("claim"):
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
        with _translated("ack"):
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
        with _translated("trim"):
            return int(await self.client.xtrim(stream, minid=minid, approximate=False))

    async def length(self) -> int:
        with _translated("length"):
            return sum(
                [int(await self.client.xlen(self._stream(p))) for p in range(self.partitions)]
            )

    async def close(self) -> None:
        await self.client.aclose()


def _translated(what: str) -> AbstractContextManager[None]:
    return translate_redis_errors(f"event log: {what}", LogUnavailable)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
