"""`RegionalTopK`: the region's most requested prompts, merged from every edge into Redis.

Edges add their counts (ZINCRBY) and each key's request description (a hash) every few
seconds; the sorted set is trimmed to `keep` keys and both expire if no edge writes for a
day. A starting edge reads the top K to prewarm its L1. A Redis failure raises
`StoreUnavailable`.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from cache.popularity import Counted
from regional.connections import translate_redis_errors

_DAY_MS = 86_400_000


class RegionalTopK:
    def __init__(self, client: Redis | RedisCluster, region: str, *, keep: int = 1000) -> None:
        self.client = client
        # One hash tag, so a cluster keeps both keys in one slot.
        self._scores = f"edge:{{{region}}}:popular"
        self._specs = f"edge:{{{region}}}:popular:spec"
        self.keep = keep

    async def merge(self, counted: Sequence[Counted]) -> None:
        if not counted:
            return
        with translate_redis_errors("popular prompts: merge"):
            async with self.client.pipeline(transaction=False) as pipe:
                for item in counted:
                    pipe.zincrby(self._scores, item.hits, item.key)
                pipe.hset(self._specs, mapping={item.key: item.spec for item in counted})
                pipe.zrange(self._scores, 0, -self.keep - 1)  # those about to be trimmed
                pipe.zremrangebyrank(self._scores, 0, -self.keep - 1)
                pipe.pexpire(self._scores, _DAY_MS)
                pipe.pexpire(self._specs, _DAY_MS)
                results = await pipe.execute()
            trimmed = results[len(counted) + 1]
            if trimmed:  # their descriptions go too, so the hash stays as small as the set
                await self.client.hdel(self._specs, *trimmed)

    async def top(self, k: int) -> list[tuple[str, bytes]]:
        """The k most requested keys with their request descriptions, most requested first."""
        with translate_redis_errors("popular prompts: top"):
            raw_keys = await self.client.zrevrange(self._scores, 0, k - 1)
            keys = [key.decode() if isinstance(key, bytes) else str(key) for key in raw_keys]
            if not keys:
                return []
            specs = await self.client.hmget(self._specs, keys)
        return [
            (key, spec) for key, spec in zip(keys, specs, strict=True) if isinstance(spec, bytes)
        ]
