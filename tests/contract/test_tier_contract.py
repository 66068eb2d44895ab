"""One contract, run against every cache tier (the `tier` fixture)."""

from __future__ import annotations

import pytest

from cache.base import Entry, Tier, TierState
from tests.clock import FakeClock


def _entry(clock: FakeClock, body: bytes = b"playlist", fresh: float = 60) -> Entry:
    now = clock()
    return Entry(
        body, now, now + fresh, now + fresh + 10, now + fresh + 100, etag="e1", tags=("genre:jazz",)
    )


async def test_set_then_get_returns_the_same_entry(tier: Tier, clock: FakeClock) -> None:
    """What is stored comes back byte for byte, with its metadata."""
    entry = _entry(clock)
    await tier.set("k", entry, 100)
    assert await tier.get("k") == entry


async def test_missing_key_is_none(tier: Tier) -> None:
    """An absent key is a miss, not an error."""
    assert await tier.get("absent") is None
    assert await tier.expires_in("absent") is None
    assert await tier.delete("absent") is False


async def test_entry_expires_exactly_at_its_ttl(tier: Tier, clock: FakeClock) -> None:
    """Just before the TTL the entry is there; at it, get and expires_in both say gone."""
    await tier.set("k", _entry(clock), 30)
    clock.advance(29.9)
    assert await tier.get("k") is not None
    assert (await tier.expires_in("k")) == pytest.approx(0.1, abs=1e-6)
    clock.advance(0.1)
    assert await tier.get("k") is None
    assert await tier.expires_in("k") is None


async def test_overwrite_replaces_value_and_ttl(tier: Tier, clock: FakeClock) -> None:
    """A second set wins, including its lifetime."""
    await tier.set("k", _entry(clock, b"old"), 10)
    await tier.set("k", _entry(clock, b"new"), 50)
    clock.advance(20)
    got = await tier.get("k")
    assert got is not None
    assert got.body == b"new"


async def test_delete_removes(tier: Tier, clock: FakeClock) -> None:
    await tier.set("k", _entry(clock), 10)
    assert await tier.delete("k") is True
    assert await tier.get("k") is None


async def test_non_positive_ttl_stores_nothing(tier: Tier, clock: FakeClock) -> None:
    """A TTL of zero or less (an entry already past its stale window) is not stored."""
    await tier.set("k", _entry(clock), 0)
    await tier.set("j", _entry(clock), -5)
    assert await tier.get("k") is None
    assert await tier.get("j") is None


async def test_zero_byte_body_round_trips(tier: Tier, clock: FakeClock) -> None:
    await tier.set("k", _entry(clock, b""), 10)
    got = await tier.get("k")
    assert got is not None
    assert got.body == b""


async def test_healthy_tier_reports_ok(tier: Tier) -> None:
    assert await tier.state() == TierState.OK
