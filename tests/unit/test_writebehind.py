"""Write-behind: writes leave the caller at once, land later, and are never dropped silently."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

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
        self.error: Exception | None = None
        self.attempts = 0

    async def set(self, key: str, entry: Entry, expires_in: float) -> None:
        await self.gate.wait()
        self.attempts += 1
        if self.error is not None:
            raise self.error
        if self.fail:
            raise TierUnavailable("connection refused")
        await super().set(key, entry, expires_in)


class _BatchTier(_SlowTier):
    """A slow tier that writes a batch as one gated operation, recording each batch's keys."""

    batch_writes = True

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.batches: list[list[str]] = []

    async def set_many(self, items: Sequence[tuple[str, Entry, float]]) -> None:
        await self.gate.wait()
        if self.error is not None:
            raise self.error
        if self.fail:
            raise TierUnavailable("connection refused")
        self.batches.append([key for key, _entry, _ttl in items])
        for key, entry, expires_in in items:
            await MemoryTier.set(self, key, entry, expires_in)


def _entry(clock: FakeClock, body: bytes = b"x", tags: tuple[str, ...] = ()) -> Entry:
    now = clock()
    return Entry(body, now, now + 10, now + 20, now + 30, tags=tags)


async def _until(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not check():
            await asyncio.sleep(0.005)


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


async def test_writes_held_while_the_tier_is_down_all_land_when_it_returns(
    clock: FakeClock,
) -> None:
    inner = _SlowTier(clock)
    inner.fail = True
    inner.gate.set()
    tier = WriteBehind(inner, retry_initial=0.001, retry_max=0.01)
    for i in range(5):
        await tier.set(f"k{i}", _entry(clock, body=str(i).encode()), 30)
    await _until(lambda: tier.retries >= 3)
    assert tier.holding
    assert tier.pending == 5
    assert tier.written == 0
    inner.fail = False
    await tier.flush()
    assert not tier.holding
    assert (tier.written, tier.pending, tier.dropped, tier.failed) == (5, 0, 0, 0)
    for i in range(5):
        landed = await inner.get(f"k{i}")
        assert landed is not None
        assert landed.body == str(i).encode()


async def test_a_write_that_expires_while_held_is_let_go(clock: FakeClock) -> None:
    inner = _SlowTier(clock)
    inner.fail = True
    inner.gate.set()
    tier = WriteBehind(inner, retry_initial=0.001, retry_max=0.01)
    await tier.set("short", _entry(clock), 0.05)
    await tier.set("long", _entry(clock), 30)
    await asyncio.sleep(0.1)
    inner.fail = False
    await tier.flush()
    assert (tier.expired, tier.written) == (1, 1)
    assert await inner.get("short") is None
    assert await inner.get("long") is not None


async def test_an_unexpected_error_is_counted_and_not_retried(clock: FakeClock) -> None:
    inner = _SlowTier(clock)
    inner.error = ValueError("entry too large for this store")
    inner.gate.set()
    tier = WriteBehind(inner, retry_initial=0.001)
    await tier.set("k", _entry(clock), 30)
    await tier.flush()
    assert (tier.failed, tier.written, inner.attempts) == (1, 0, 1)


async def test_a_batch_writing_tier_gets_the_queue_in_order_in_few_calls(
    clock: FakeClock,
) -> None:
    inner = _BatchTier(clock)
    tier = WriteBehind(inner, batch_limit=4)
    await tier.set("k0", _entry(clock), 30)
    await asyncio.sleep(0)  # the worker takes k0 alone and waits at the gate
    for i in range(1, 7):
        await tier.set(f"k{i}", _entry(clock), 30)
    assert tier.pending == 7
    inner.gate.set()
    await tier.flush()
    assert inner.batches == [["k0"], ["k1", "k2", "k3", "k4"], ["k5", "k6"]]
    assert tier.written == 7
    assert tier.pending == 0


@pytest.mark.parametrize("make", [_SlowTier, _BatchTier], ids=["one-by-one", "batches"])
async def test_a_purge_cancels_the_queued_writes_it_covers(
    clock: FakeClock, make: Callable[[FakeClock], _SlowTier]
) -> None:
    inner = make(clock)
    tier = WriteBehind(inner)
    await tier.set("first", _entry(clock), 30)
    await asyncio.sleep(0)  # the worker holds "first" at the gate
    await tier.set("tagged", _entry(clock, b"old", tags=("track:t1",)), 30)
    await tier.set("deleted", _entry(clock), 30)
    await tier.set("other", _entry(clock, tags=("track:t2",)), 30)
    await tier.purge_tags(["track:t1"])
    await tier.delete("deleted")
    await tier.set("tagged", _entry(clock, b"new", tags=("track:t1",)), 30)  # after the purge
    inner.gate.set()
    await tier.flush()
    assert tier.cancelled == 2
    if isinstance(inner, _BatchTier):
        assert inner.batches == [["first"], ["other", "tagged"]]
    assert await inner.get("deleted") is None
    newer = await inner.get("tagged")
    assert newer is not None
    assert newer.body == b"new"
    assert await inner.get("other") is not None
    assert await inner.get("first") is not None


async def test_a_batch_that_raises_counts_only_its_live_writes_as_failed(
    clock: FakeClock,
) -> None:
    inner = _BatchTier(clock)
    tier = WriteBehind(inner)
    await tier.set("first", _entry(clock), 30)
    await asyncio.sleep(0)  # the worker holds "first" at the gate
    await tier.set("purged", _entry(clock, tags=("track:t1",)), 30)
    await tier.set("kept", _entry(clock), 30)
    await tier.purge_tags(["track:t1"])
    inner.error = RuntimeError("a bug in the tier")
    inner.gate.set()
    await tier.flush()
    assert (tier.cancelled, tier.failed, tier.written) == (1, 2, 0)
    assert tier.pending == 0


async def test_a_batch_is_held_and_retried_whole_while_the_tier_is_down(clock: FakeClock) -> None:
    inner = _BatchTier(clock)
    inner.fail = True
    inner.gate.set()
    tier = WriteBehind(inner, retry_initial=0.001, retry_max=0.01)
    for i in range(3):
        await tier.set(f"k{i}", _entry(clock), 30)
    await _until(lambda: tier.retries >= 3)
    assert tier.holding
    assert tier.pending == 3
    inner.fail = False
    await tier.flush()
    assert inner.batches == [["k0", "k1", "k2"]]
    assert tier.written == 3


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
