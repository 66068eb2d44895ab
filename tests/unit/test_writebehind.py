"""Write-behind: writes leave the caller at once, land later, and are never dropped silently."""

from __future__ import annotations

import asyncio

import pytest

from cache.base import Entry, TierState
from cache.errors import TierUnavailable
from cache.memory import MemoryTier
from cache.writebehind import WriteBehind
from tests.clock import FakeClock


class _SlowTier(MemoryTier):
    """A memory tier whose writes wait for a gate, or fail when told to."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(1 << 20, clock=clock, name="global")
        self.gate = asyncio.Event()
        self.fail = False

    async def set(self, key: str, entry: Entry, expires_in: float) -> None:
        await self.gate.wait()
        if self.fail:
            raise TierUnavailable("disk full")
        await super().set(key, entry, expires_in)


def _entry(clock: FakeClock) -> Entry:
    now = clock()
    return Entry(b"x", now, now + 10, now + 20, now + 30)


async def test_set_returns_before_the_write_lands(clock: FakeClock) -> None:
    inner = _SlowTier(clock)
    tier = WriteBehind(inner, limit=4)
    await tier.set("k", _entry(clock), 30)
    assert await tier.get("k") is None
    assert tier.pending == 1
    inner.gate.set()
    await tier.flush()
    assert await tier.get("k") is not None
    assert tier.written == 1


async def test_full_queue_drops_count_and_report(clock: FakeClock) -> None:
    inner = _SlowTier(clock)
    dropped: list[str] = []
    tier = WriteBehind(inner, limit=2, on_drop=dropped.append)
    for i in range(5):
        await tier.set(f"k{i}", _entry(clock), 30)
    await asyncio.sleep(0)  # the worker takes one item off the queue and waits at the gate
    await tier.set("k5", _entry(clock), 30)
    assert tier.dropped == len(dropped) >= 3
    assert await tier.state() is TierState.DEGRADED
    inner.gate.set()
    await tier.flush()
    assert tier.written + tier.dropped == 6


async def test_failed_writes_are_counted_not_raised(clock: FakeClock) -> None:
    inner = _SlowTier(clock)
    inner.fail = True
    inner.gate.set()
    tier = WriteBehind(inner)
    await tier.set("k", _entry(clock), 30)
    await tier.flush()
    assert tier.failed == 1
    assert tier.written == 0


async def test_close_drains_what_is_queued(clock: FakeClock) -> None:
    inner = _SlowTier(clock)
    inner.gate.set()
    tier = WriteBehind(inner)
    for i in range(10):
        await tier.set(f"k{i}", _entry(clock), 30)
    await tier.close()
    assert all([await inner.get(f"k{i}") is not None for i in range(10)])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
