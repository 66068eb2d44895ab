"""What an edge shares with its region: `Region` (the connections and stores), and
`RegionLease`, by which one edge of the region computes a key and the others read its
answer from L2.

With an L2, the first edge to miss a key holds a short lease on computing it (a Redis SET
NX with expiry, `RedisTier.lease`), and the region's other edges wait, bounded, for the
entry to land in L2 instead of computing it again. Without an L2 (or when it does not
answer) there is no coordination and every edge computes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from cache.base import Entry
from cache.errors import TierUnavailable
from cache.memory import MemoryTier
from cache.redis_tier import RedisTier
from edge.metrics import Metrics
from regional.consumers import LabelStore, SessionStore
from regional.invalidation import InvalidationBus


@dataclass(frozen=True)
class Region:
    """What a service shares with the region's other edges (all None: a lone edge)."""

    node_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    lease_tier: RedisTier | None = None
    """L2, where the lease on computing a key is held."""
    bus: InvalidationBus | None = None
    sessions: SessionStore | None = None
    """Session state from the event consumers (early skips)."""
    labels: LabelStore | None = None
    """Prompt-quality labels (prewarm leaves mostly rejected prompts out)."""
    user_hash: Callable[[str], str] | None = None
    """The region's keyed pseudonym of a user token."""


class RegionLease:
    """The region's lease on computing a key, held in L2 under this edge's id."""

    def __init__(
        self,
        tier: RedisTier | None,
        l1: MemoryTier,
        metrics: Metrics,
        *,
        node_id: str,
        seconds: float,
        clock: Callable[[], float],
    ) -> None:
        self.tier = tier
        self.l1 = l1
        self.metrics = metrics
        self.node_id = node_id
        self.seconds = seconds
        self._clock = clock

    async def acquire(self, key: str) -> bool | None:
        """True: this node computes `key`; False: another edge is on it; None: no lease."""
        if self.tier is None or self.seconds <= 0:
            return None
        try:
            return await self.tier.lease(key, self.node_id, self.seconds)
        except TierUnavailable:
            return None  # no Redis, no coordination: compute here

    async def release(self, key: str) -> None:
        if self.tier is not None:
            with contextlib.suppress(TierUnavailable):
                await self.tier.release(key, self.node_id)

    async def wait(self, key: str) -> Entry | None:
        """The entry another edge is computing, read from L2 once it lands (bounded wait)."""
        assert self.tier is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        while loop.time() < deadline:
            await asyncio.sleep(0.02)
            try:
                entry = await self.tier.get(key)
            except TierUnavailable:
                return None
            if entry is not None:
                await self.l1.set(key, entry, entry.ttl(self._clock()))
                self.metrics.cache_outcome(self.tier.name, "leased")
                return entry
        return None

    async def younger(self, key: str, seen: Entry, due: Callable[[Entry], float]) -> Entry | None:
        """An entry for `key` in L2 that another edge made after `seen` and that is not
        `due` for refreshing yet, now also in L1."""
        if self.tier is None:
            return None
        try:
            shared = await self.tier.get(key)
        except TierUnavailable:
            return None
        now = self._clock()
        if shared is None or shared.created <= seen.created or now >= due(shared):
            return None
        await self.l1.set(key, shared, shared.ttl(now))
        return shared
