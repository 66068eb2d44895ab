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


async def test_set_many_is_set_for_each_in_order(tier: Tier, clock: FakeClock) -> None:
    """A batch stores each entry for its own lifetime; a later item for a key wins, and a
    non-positive lifetime removes the key, as `set` would."""
    await tier.set("gone", _entry(clock), 100)
    await tier.set_many(
        [
            ("a", _entry(clock, b"a1"), 10),
            ("b", _entry(clock, b"b"), 50),
            ("a", _entry(clock, b"a2"), 30),
            ("gone", _entry(clock), 0),
        ]
    )
    a, b = await tier.get("a"), await tier.get("b")
    assert a is not None
    assert a.body == b"a2"
    assert b is not None
    assert b.body == b"b"
    assert await tier.get("gone") is None
    clock.advance(40)
    assert await tier.get("a") is None
    assert await tier.get("b") is not None


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


async def test_expires_in_follows_the_clock(tier: Tier, clock: FakeClock) -> None:
    await tier.set("k", _entry(clock), 100)
    assert await tier.expires_in("k") == pytest.approx(100, abs=1e-6)
    clock.advance(40)
    assert await tier.expires_in("k") == pytest.approx(60, abs=1e-6)


async def test_fractional_ttl_is_kept_to_the_millisecond(tier: Tier, clock: FakeClock) -> None:
    await tier.set("k", _entry(clock), 0.25)
    clock.advance(0.24)
    assert await tier.get("k") is not None
    clock.advance(0.011)
    assert await tier.get("k") is None


async def test_overwrite_with_shorter_ttl_shortens(tier: Tier, clock: FakeClock) -> None:
    await tier.set("k", _entry(clock), 100)
    await tier.set("k", _entry(clock), 5)
    clock.advance(5)
    assert await tier.get("k") is None


async def test_keys_are_opaque_strings(tier: Tier, clock: FakeClock) -> None:
    """Colons, spaces, unicode and long keys neither collide nor fail."""
    keys = ["a:b", "a b", "ä€😀", "x" * 500, "e:k", "t:genre:jazz"]
    for i, key in enumerate(keys):
        await tier.set(key, _entry(clock, str(i).encode()), 10)
    for i, key in enumerate(keys):
        got = await tier.get(key)
        assert got is not None, key
        assert got.body == str(i).encode(), key


async def test_large_body_and_metadata_round_trip(tier: Tier, clock: FakeClock) -> None:
    now = clock()
    entry = Entry(
        bytes(range(256)) * 1024,
        now - 3.5,
        now + 1,
        now + 2,
        now + 3,
        etag="f" * 16,
        tags=tuple(f"track:{i}" for i in range(100)),
        shared=False,
    )
    await tier.set("big", entry, 10)
    assert await tier.get("big") == entry


async def test_long_ttl_survives_a_day(tier: Tier, clock: FakeClock) -> None:
    await tier.set("k", _entry(clock), 3 * 86400)
    clock.advance(86400)
    assert await tier.get("k") is not None


async def test_purge_by_tags_drops_exactly_the_tagged(tier: Tier, clock: FakeClock) -> None:
    now = clock()

    def tagged(*tags: str) -> Entry:
        return Entry(b"x", now, now + 60, now + 70, now + 80, tags=tags)

    await tier.set("a", tagged("track:1", "genre:jazz"), 100)
    await tier.set("b", tagged("track:2"), 100)
    await tier.set("c", tagged("track:3", "genre:jazz"), 100)
    await tier.set("d", tagged("track:4"), 100)
    assert await tier.purge_tags(["genre:jazz", "track:2"]) == 3
    assert [await tier.get(k) is None for k in "abcd"] == [True, True, True, False]
    assert await tier.purge_tags(["genre:jazz"]) == 0
    assert await tier.purge_tags([]) == 0


async def test_soften_marks_tagged_entries_stale_and_keeps_them(
    tier: Tier, clock: FakeClock
) -> None:
    """A soft purge keeps the bytes but ends their freshness now; the revalidation window
    starts from now, and untagged entries are untouched."""
    now = clock()

    def tagged(*tags: str) -> Entry:
        return Entry(b"x", now, now + 60, now + 70, now + 80, tags=tags)

    await tier.set("a", tagged("t:1"), 100)
    await tier.set("b", tagged("t:2"), 100)
    await tier.set("c", tagged("t:3"), 100)
    clock.advance(5)
    assert await tier.soften(["c"], ["t:1"], clock()) == 2
    softened, kept, by_key = await tier.get("a"), await tier.get("b"), await tier.get("c")
    assert softened is not None
    assert softened.body == b"x"
    assert not softened.is_fresh(clock())
    assert softened.revalidate_until == clock() + 10
    assert kept == tagged("t:2")
    assert by_key is not None
    assert not by_key.is_fresh(clock())
    assert await tier.soften([], ["t:1"], clock()) == 0
