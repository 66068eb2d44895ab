"""Per-user adjustment after the cache: drop tracks a user excluded, backfill, never share.

Exclusion sets live in a cache tier under a hash of the user token (the token itself is
never stored or logged), as a JSON list of track ids, so the same data can sit in L1 now
and in Redis once the event pipeline fills it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import msgspec

from cache.base import Entry, Tier

Clock = Callable[[], float]


class UserExclusions:
    """Track ids each user does not want, bounded per user, expiring after `ttl` seconds."""

    def __init__(
        self,
        tier: Tier,
        *,
        pseudonym: Callable[[str], str],
        max_items: int,
        ttl: float = 30 * 86400,
        clock: Clock = time.time,
    ) -> None:
        self._tier = tier
        self._pseudonym = pseudonym
        """The keyed hash of a user token (the region's user-hash key)."""
        self.max_items = max_items
        self.ttl = ttl
        self._clock = clock

    def key(self, token: str) -> str:
        return "excl:" + self._pseudonym(token)

    async def get(self, token: str) -> frozenset[str]:
        entry = await self._tier.get(self.key(token))
        if entry is None:
            return frozenset()
        return frozenset(msgspec.json.decode(entry.body, type=list[str]))

    async def add(self, token: str, track_ids: Iterable[str]) -> None:
        """Add ids (the most recent are kept when the set is over its bound)."""
        key = self.key(token)
        entry = await self._tier.get(key)
        ids = msgspec.json.decode(entry.body, type=list[str]) if entry else []
        for track in track_ids:
            if track in ids:
                ids.remove(track)
            ids.append(track)
        ids = ids[-self.max_items :]
        now = self._clock()
        until = now + self.ttl
        stored = Entry(msgspec.json.encode(ids), now, until, until, until, shared=True)
        await self._tier.set(key, stored, self.ttl)
