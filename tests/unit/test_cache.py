"""L1 bounds, the tiered read-through, single-flight and freshness policy."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Collection

import pytest

from cache.base import Entry, Tier, TierState
from cache.errors import TierUnavailable
from cache.flight import SingleFlight
from cache.memory import MemoryTier
from cache.policy import FreshnessPolicy
from cache.tiered import TieredCache
from tests.clock import FakeClock


def _entry(now: float, body: bytes = b"x" * 100, shared: bool = True) -> Entry:
    return Entry(body, now, now + 60, now + 120, now + 600, shared=shared)


class DeadTier(Tier):
    """A tier whose backend is unreachable: every call raises TierUnavailable."""

    name = "dead"

    async def get(self, key: str) -> Entry | None:
        raise TierUnavailable("connection refused")

    async def set(self, key: str, entry: Entry, expires_in: float) -> None:
        raise TierUnavailable("connection refused")

    async def delete(self, key: str) -> bool:
        raise TierUnavailable("connection refused")

    async def expires_in(self, key: str) -> float | None:
        raise TierUnavailable("connection refused")

    async def purge_tags(self, tags: Collection[str]) -> int:
        raise TierUnavailable("connection refused")

    async def tagged(self, tags: Collection[str]) -> frozenset[str]:
        raise TierUnavailable("connection refused")

    async def state(self) -> TierState:
        return TierState.DOWN


def test_memory_tier_stays_within_its_byte_budget() -> None:
    """Inserting far more than fits evicts the least recently used entries."""
    clock = FakeClock()
    tier = MemoryTier(10_000, clock=clock)
    for i in range(100):
        tier.put(f"k{i}", _entry(clock(), b"x" * 500), 60)
    assert tier.bytes_used <= 10_000
    assert tier.peek("k99") is not None
    assert tier.peek("k0") is None


def test_memory_tier_keeps_recently_read_entries() -> None:
    """A key read often survives a stream of new ones that evicts its untouched peers."""
    clock = FakeClock()
    tier = MemoryTier(5_000, clock=clock)
    tier.put("hot", _entry(clock(), b"h" * 500), 60)
    for i in range(50):
        tier.put(f"k{i}", _entry(clock(), b"x" * 500), 60)
        assert tier.peek("hot") is not None


def test_memory_tier_refuses_an_entry_larger_than_itself() -> None:
    tier = MemoryTier(1_000, clock=FakeClock())
    tier.put("big", _entry(0, b"x" * 5_000), 60)
    assert tier.peek("big") is None
    assert len(tier) == 0


async def test_lower_tier_hit_is_promoted_with_remaining_lifetime() -> None:
    """A hit in L2 is copied to L1, expiring when the entry's stale window ends."""
    clock = FakeClock()
    l1, l2 = MemoryTier(1 << 20, clock=clock), MemoryTier(1 << 20, clock=clock, name="l2")
    cache = TieredCache([l1, l2], clock=clock)
    entry = _entry(clock())
    await l2.set("k", entry, 600)
    clock.advance(100)
    found = await cache.get("k")
    assert found is not None
    assert found.tier == "l2"
    assert await l1.expires_in("k") == pytest.approx(500)
    found = await cache.get("k")
    assert found is not None
    assert found.tier == "l1"


async def test_dead_tier_is_a_miss_and_reported() -> None:
    """An unreachable tier never raises to the caller; L1 keeps working."""
    clock = FakeClock()
    errors: list[str] = []
    l1 = MemoryTier(1 << 20, clock=clock)
    cache = TieredCache([l1, DeadTier()], clock=clock, on_error=lambda t, _e: errors.append(t))
    assert await cache.get("k") is None
    await cache.set("k", _entry(clock()))
    found = await cache.get("k")
    assert found is not None
    assert found.tier == "l1"
    assert errors == ["dead", "dead"]


async def test_entries_not_shared_stay_in_the_first_tier() -> None:
    """Degraded answers (shared=False) are never written below L1."""
    clock = FakeClock()
    l1, l2 = MemoryTier(1 << 20, clock=clock), MemoryTier(1 << 20, clock=clock, name="l2")
    cache = TieredCache([l1, l2], clock=clock)
    await cache.set("k", _entry(clock(), shared=False))
    assert await l1.get("k") is not None
    assert await l2.get("k") is None


async def test_single_flight_runs_work_once_for_concurrent_callers() -> None:
    """Ten concurrent callers of one key share one execution and its result."""
    flights: SingleFlight[int] = SingleFlight()
    calls = 0
    gate = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42

    waiters = [asyncio.create_task(flights.run("k", work)) for _ in range(10)]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*waiters)
    assert calls == 1
    assert [r for r, _ in results] == [42] * 10
    assert sum(leader for _, leader in results) == 1
    assert "k" not in flights


async def test_single_flight_survives_a_cancelled_caller() -> None:
    """Cancelling one waiter leaves the shared work running for the others."""
    flights: SingleFlight[str] = SingleFlight()
    gate = asyncio.Event()

    async def work() -> str:
        await gate.wait()
        return "done"

    first = asyncio.create_task(flights.run("k", work))
    second = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    first.cancel()
    gate.set()
    assert (await second)[0] == "done"
    with pytest.raises(asyncio.CancelledError):
        await first


async def test_single_flight_shares_errors() -> None:
    flights: SingleFlight[int] = SingleFlight()

    async def work() -> int:
        raise ValueError("boom")

    results = await asyncio.gather(
        flights.run("k", work), flights.run("k", work), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)


def test_freshness_policy_jitters_within_bounds_and_is_seeded() -> None:
    """Lifetimes spread within ±jitter; the same seed gives the same spread."""

    def lifetimes(seed: int) -> list[float]:
        policy = FreshnessPolicy(100, 10, 1000, jitter=0.2, rng=random.Random(seed))
        return [policy.entry(b"", now=0).max_age for _ in range(200)]

    spread = lifetimes(1)
    assert all(80 <= t <= 120 for t in spread)
    assert max(spread) - min(spread) > 20
    assert spread == lifetimes(1) != lifetimes(2)
    entry = FreshnessPolicy(100, 10, 1000, jitter=0).entry(b"", now=0)
    assert (entry.fresh_until, entry.revalidate_until, entry.stale_until) == (100, 110, 1100)
