"""`TieredCache`: read-through over an ordered list of tiers, fastest first.

A hit in a lower tier is copied into the tiers above it with the entry's remaining lifetime.
A tier that fails counts as a miss on read and is skipped on write; the failure is reported
to `on_error` so metrics and health can show it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import NamedTuple

from opentelemetry import trace

from cache.base import Entry, Tier
from cache.errors import TierUnavailable

Clock = Callable[[], float]
_NO_SPAN = nullcontext(trace.INVALID_SPAN)


class Lookup(NamedTuple):
    """An entry and the name of the tier it was found in."""

    entry: Entry
    tier: str


def _ignore(_tier: str, _what: object) -> None:
    return None


class TieredCache:
    """L1 → L2 → … The first tier is this process's; `Entry.shared=False` stays there."""

    def __init__(
        self,
        tiers: Sequence[Tier],
        *,
        clock: Clock = time.time,
        on_error: Callable[[str, TierUnavailable], None] = _ignore,
        tracer: trace.Tracer | None = None,
        on_write: Callable[[str, int], None] = _ignore,
    ) -> None:
        if not tiers:
            raise ValueError("a TieredCache needs at least one tier")
        self.tiers = tuple(tiers)
        self._clock = clock
        self._on_error = on_error
        self._tracer = tracer
        """A span per tier looked at, with its outcome (hit, miss or error); with None, no
        span work at all (OpenTelemetry's no-op spans still cost contextvars work)."""
        self._on_write = on_write
        """Told (tier name, body bytes) of each write, for cost accounting."""

    async def get(self, key: str) -> Lookup | None:
        """The first usable entry (fresh or still within its stale window), promoted upward."""
        now = self._clock()
        for depth, tier in enumerate(self.tiers):
            with self._span(tier.name) as span:
                try:
                    entry = await tier.get(key)
                except TierUnavailable as exc:
                    span.set_attribute("edge.outcome", "error")
                    self._on_error(tier.name, exc)
                    continue
                usable = entry is not None and entry.ttl(now) > 0
                span.set_attribute("edge.outcome", "hit" if usable else "miss")
            if entry is None or not usable:
                continue
            for upper in self.tiers[:depth]:
                await self._write(upper, key, entry, now)
            return Lookup(entry, tier.name)
        return None

    def _span(self, name: str) -> AbstractContextManager[trace.Span]:
        if self._tracer is None:
            return _NO_SPAN
        return self._tracer.start_as_current_span(name)

    async def set(self, key: str, entry: Entry) -> None:
        """Write to every tier the entry may live in, for its remaining lifetime."""
        now = self._clock()
        for depth, tier in enumerate(self.tiers):
            if depth > 0 and not entry.shared:
                break
            await self._write(tier, key, entry, now)

    async def delete(self, key: str) -> None:
        for tier in self.tiers:
            try:
                await tier.delete(key)
            except TierUnavailable as exc:
                self._on_error(tier.name, exc)

    async def purge(self, keys: Collection[str] = (), tags: Collection[str] = ()) -> dict[str, int]:
        """Drop `keys` and every entry tagged with one of `tags` from every tier.

        Returns the count dropped per tier; a tier that fails is reported and counted -1.
        A lookup racing the purge can still promote an entry before the lowest tier is done;
        the caller's invalidation (L1 everywhere, after this returns) covers that window.
        """
        dropped: dict[str, int] = {}
        # Bottom-up: a read that misses an upper tier must not find, and promote back, an
        # entry a lower tier still holds.
        for tier in reversed(self.tiers):
            try:
                count = 0
                for key in keys:
                    count += await tier.delete(key)
                if tags:
                    count += await tier.purge_tags(tags)
            except TierUnavailable as exc:
                self._on_error(tier.name, exc)
                count = -1
            dropped[tier.name] = count
        return dropped

    async def soften(
        self, keys: Collection[str] = (), tags: Collection[str] = ()
    ) -> dict[str, int]:
        """Mark `keys` and every entry tagged with one of `tags` stale in every tier (a soft
        purge: served while revalidating, as a CDN's soft purge does); counts as `purge`."""
        now = self._clock()
        softened: dict[str, int] = {}
        for tier in reversed(self.tiers):
            try:
                softened[tier.name] = await tier.soften(keys, tags, now)
            except TierUnavailable as exc:
                self._on_error(tier.name, exc)
                softened[tier.name] = -1
        return softened

    async def _write(self, tier: Tier, key: str, entry: Entry, now: float) -> None:
        try:
            await tier.set(key, entry, entry.ttl(now))
        except TierUnavailable as exc:
            self._on_error(tier.name, exc)
            return
        self._on_write(tier.name, len(entry.body))
