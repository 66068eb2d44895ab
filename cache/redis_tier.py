"""`RedisTier`: a region's shared L2 (or a networked global store) on Redis.

Each call has a hard timeout and goes through a circuit breaker; a refused, failed or late
call raises `TierUnavailable`, which the tiered cache counts as a miss. An entry is stored
as msgpack with its deadline, so expiry follows the injected clock exactly (the contract
tests freeze it), while Redis's own expiry (PX, a little later) frees the memory.

Every entry's tags (prompt key, version, slots, track ids) are indexed in Redis sets, one
per tag and time bucket (`{prefix}t:{tag}:{bucket}`), so a purge by tag finds the entries
without scanning. A bucket's set expires with the longest-lived entry written in it: a broad
tag such as the artifact version never accumulates keys long gone, and a purge reads only
the buckets whose entries can still be alive (`max_ttl` back from now).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from collections.abc import Set as AbstractSet
from typing import TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from cache.base import Entry, Tier, TierState, pack, unpack
from cache.breaker import BreakerState, CircuitBreaker
from cache.errors import TierUnavailable

T = TypeVar("T")

REDIS_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError, RuntimeError)
"""What a Redis call can fail with: server errors, cluster discovery, sockets, timeouts, and
RuntimeError, which uvloop raises when redis-py writes to a transport the server reset
(found by the redis-kill drill). redis-py's RedisClusterException is not a RedisError."""
Clock = Callable[[], float]

# Redis expires keys a little after the logical deadline: a clock skew between edges never
# makes Redis drop an entry another edge still considers alive.
_GRACE_MS = 5_000


# Compare-and-delete in one step, so a lease that expired and was taken by another edge
# is never dropped by its previous holder.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTier(Tier):
    """Entries under `{prefix}e:{key}`; tag sets under `{prefix}t:{tag}`."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        name: str = "l2",
        prefix: str = "edge:",
        timeout: float = 0.05,
        breaker: CircuitBreaker | None = None,
        clock: Clock = time.time,
        max_ttl: float = 7 * 86400,
        tag_bucket: float = 6 * 3600,
    ) -> None:
        self.name = name
        self.client = client
        self.prefix = prefix
        self.timeout = timeout
        self.breaker = breaker or CircuitBreaker()
        self._clock = clock
        self.max_ttl = max_ttl
        """Longest any entry is kept here, whatever lifetime it is given."""
        self.tag_bucket = tag_bucket

    def _key(self, key: str) -> str:
        return f"{self.prefix}e:{key}"

    def _tag(self, tag: str, bucket: int) -> str:
        return f"{self.prefix}t:{tag}:{bucket}"

    def _live_buckets(self) -> range:
        now = self._clock()
        return range(int((now - self.max_ttl) // self.tag_bucket), int(now // self.tag_bucket) + 1)

    async def _call(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise TierUnavailable(f"{self.name}: circuit open, {what} not sent")
        try:
            async with asyncio.timeout(self.timeout):
                result = await make()
        except REDIS_FAILURES as exc:
            self.breaker.record(False)
            raise TierUnavailable(f"{self.name}: {what} failed: {exc!r}") from exc
        except BaseException:
            self.breaker.abandon()  # cancelled from outside: not Redis's doing
            raise
        self.breaker.record(True)
        return result

    async def connect(self, timeout: float = 2.0) -> bool:
        """Open a connection (and learn a cluster's slot map) ahead of the first request,
        whose own timeout is too short for that; False if Redis did not answer in time."""
        try:
            async with asyncio.timeout(timeout):
                if isinstance(self.client, RedisCluster):
                    await self.client.initialize()
                await self.client.ping()
        except REDIS_FAILURES:
            return False
        return True

    async def get(self, key: str) -> Entry | None:
        raw = await self._call("GET", lambda: self.client.get(self._key(key)))
        record = self._record(raw)
        return None if record is None else record[1]

    def _record(self, raw: bytes | str | None) -> tuple[float, Entry] | None:
        """The live (expiry, entry) in a stored value; bytes that are not ours are a miss."""
        record = unpack(raw) if isinstance(raw, bytes) else None
        return record if record is not None and record[0] > self._clock() else None

    async def set(self, key: str, entry: Entry, expires_in: float) -> None:
        if expires_in <= 0:
            await self.delete(key)
            return
        expires_in = min(expires_in, self.max_ttl)
        ttl_ms = int(expires_in * 1000) + _GRACE_MS
        now = self._clock()
        value = pack(entry, now + expires_in)
        bucket = int(now // self.tag_bucket)

        async def write() -> None:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self._key(key), value, px=ttl_ms)
                for tag in entry.tags:
                    # A tag set lives as long as its longest-lived entry.
                    name = self._tag(tag, bucket)
                    pipe.sadd(name, key)
                    pipe.pexpire(name, ttl_ms, nx=True)
                    pipe.pexpire(name, ttl_ms, gt=True)
                await pipe.execute()

        await self._call("SET", write)

    async def delete(self, key: str) -> bool:
        removed = await self._call("DEL", lambda: self.client.delete(self._key(key)))
        return bool(removed)

    async def delete_many(self, keys: Iterable[str]) -> int:
        names = [self._key(k) for k in keys]
        if not names:
            return 0

        # One DEL per key: in a cluster the keys live in different slots.
        async def drop() -> int:
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.delete(name)
                return sum(int(n) for n in await pipe.execute())

        return await self._call("DEL", drop)

    async def keys_tagged(self, tag: str) -> list[str]:
        """Keys of the entries that carry `tag` (some may have expired meanwhile)."""
        names = [self._tag(tag, b) for b in self._live_buckets()]

        async def read() -> list[AbstractSet[bytes | str]]:
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.smembers(name)
                found: list[AbstractSet[bytes | str]] = await pipe.execute()
                return found

        sets = await self._call("SMEMBERS", read)
        members = set().union(*sets)
        return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)

    async def tagged(self, tags: Collection[str]) -> frozenset[str]:
        found: list[str] = []
        for tag in tags:
            found += await self.keys_tagged(tag)
        return frozenset(found)

    async def purge_tags(self, tags: Collection[str]) -> int:
        keys: set[str] = set()
        for tag in tags:
            keys.update(await self.keys_tagged(tag))
        dropped = await self.delete_many(sorted(keys))
        if tags:
            names = [self._tag(t, b) for t in tags for b in self._live_buckets()]

            async def drop_sets() -> None:
                async with self.client.pipeline(transaction=False) as pipe:
                    for name in names:
                        pipe.delete(name)
                    await pipe.execute()

            await self._call("DEL", drop_sets)
        return dropped

    async def lease(self, key: str, owner: str, seconds: float) -> bool:
        """Take the short lease on computing `key` (SET NX PX); False if another holds it."""
        name = f"{self.prefix}lease:{key}"
        taken = await self._call(
            "SET NX", lambda: self.client.set(name, owner, nx=True, px=int(seconds * 1000))
        )
        return bool(taken)

    async def release(self, key: str, owner: str) -> None:
        """Give the lease back if it is still ours (it may have expired and been retaken)."""
        name = f"{self.prefix}lease:{key}"

        await self._call("DEL", lambda: self.client.eval(_RELEASE, 1, name, owner))

    async def expires_in(self, key: str) -> float | None:
        raw = await self._call("GET", lambda: self.client.get(self._key(key)))
        record = self._record(raw)
        return None if record is None else record[0] - self._clock()

    async def state(self) -> TierState:
        breaker = self.breaker.state
        if breaker is BreakerState.OPEN:
            return TierState.DOWN
        try:
            async with asyncio.timeout(self.timeout):
                await self.client.ping()
        except (RedisError, OSError, TimeoutError):
            return TierState.DOWN
        return TierState.OK if breaker is BreakerState.CLOSED else TierState.DEGRADED

    async def close(self) -> None:
        await self.client.aclose()
