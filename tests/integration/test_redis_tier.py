"""The Redis tier against real redis-server processes: faults, breaker, tags, URLs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from cache.base import Entry, TierState
from cache.breaker import BreakerState, CircuitBreaker
from cache.errors import TierUnavailable
from cache.redis_tier import RedisTier
from loadtest.redis_server import RedisServer
from regional.connections import RedisURLError, redis_client
from tests.clock import FakeClock


@pytest.fixture
def server(redis_server: RedisServer) -> RedisServer:
    return redis_server


@pytest.fixture
async def tier(server: RedisServer) -> AsyncIterator[RedisTier]:
    breaker = CircuitBreaker(window=10, min_calls=3, failure_rate=0.5, open_for=0.5)
    made = RedisTier(redis_client(server.url, timeout=0.05), timeout=0.05, breaker=breaker)
    yield made
    await made.close()


def _entry(tags: tuple[str, ...] = ()) -> Entry:
    now = time.time()
    return Entry(b"body", now, now + 60, now + 70, now + 80, tags=tags)


async def test_dead_server_is_a_fast_tier_unavailable(tier: RedisTier, server: RedisServer) -> None:
    await tier.set("k", _entry(), 60)
    server.stop()
    started = time.perf_counter()
    with pytest.raises(TierUnavailable):
        await tier.get("k")
    assert time.perf_counter() - started < 0.5
    assert await tier.state() is TierState.DOWN


async def _open_breaker(tier: RedisTier, server: RedisServer) -> None:
    """Stop Redis and fail enough calls (3, the fixture breaker's min_calls) to open it."""
    server.stop()
    for _ in range(3):
        with pytest.raises(TierUnavailable):
            await tier.get("k")


async def test_breaker_opens_then_recovers_when_redis_returns(
    tier: RedisTier, server: RedisServer
) -> None:
    await _open_breaker(tier, server)
    assert tier.breaker.state is BreakerState.OPEN
    with pytest.raises(TierUnavailable, match="circuit open"):
        await tier.get("k")  # refused without touching the network
    server.start()
    await asyncio.sleep(0.6)  # open period over: the next call is a probe
    assert await tier.get("k") is None
    assert tier.breaker.state is BreakerState.CLOSED
    assert await tier.state() is TierState.OK


async def test_stalled_server_times_out(tier: RedisTier, server: RedisServer) -> None:
    assert server.proc is not None
    server.proc.send_signal(19)  # SIGSTOP: connections stay open, nothing answers
    try:
        started = time.perf_counter()
        with pytest.raises(TierUnavailable):
            await tier.get("k")
        assert time.perf_counter() - started < 0.5
    finally:
        server.proc.send_signal(18)  # SIGCONT


async def test_purge_by_tag_drops_every_tagged_entry(tier: RedisTier) -> None:
    await tier.set("a", _entry(("track:1", "genre:jazz")), 60)
    await tier.set("b", _entry(("track:1",)), 60)
    await tier.set("c", _entry(("track:2",)), 60)
    assert await tier.keys_tagged("track:1") == ["a", "b"]
    assert await tier.purge_tags(["track:1"]) == 2
    assert await tier.get("a") is None
    assert await tier.get("b") is None
    assert await tier.get("c") is not None


async def test_foreign_bytes_under_a_key_are_a_miss(tier: RedisTier) -> None:
    await tier.client.set("edge:e:k", b"not msgpack \xff")
    assert await tier.get("k") is None


@pytest.mark.parametrize(
    "url",
    ["http://x", "redis+sentinel://127.0.0.1:26379", "redis+cluster://:abc", "memcached://h"],
)
def test_unusable_urls_are_refused(url: str) -> None:
    with pytest.raises(RedisURLError):
        redis_client(url, timeout=0.05)


async def test_url_forms_build_clients() -> None:
    """Sentinel and Cluster URLs parse into clients (servers are issue-level HA tests)."""
    sentinel = redis_client(
        "redis+sentinel://u:p@127.0.0.1:26379,127.0.0.1:26380/mymaster/2", timeout=0.05
    )
    cluster = redis_client("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", timeout=0.05)
    assert isinstance(sentinel, Redis)
    assert type(sentinel.connection_pool).__name__ == "SentinelConnectionPool"
    assert type(cluster).__name__ == "RedisCluster"
    await sentinel.aclose()
    await cluster.aclose()


async def test_tag_index_spans_time_buckets(server: RedisServer) -> None:
    clock = FakeClock()
    tier = RedisTier(Redis.from_url(server.url), timeout=1.0, clock=clock, tag_bucket=100)
    now = clock()
    entry = Entry(b"x", now, now + 60, now + 70, now + 1000, tags=("v:1",))
    await tier.set("a", entry, 1000)
    clock.advance(250)  # two buckets later
    await tier.set("b", entry, 1000)
    assert await tier.keys_tagged("v:1") == ["a", "b"]
    assert await tier.purge_tags(["v:1"]) == 2
    assert await tier.client.keys("edge:t:*") == []
    await tier.close()


async def test_a_cancelled_call_does_not_lock_the_breaker(
    tier: RedisTier, server: RedisServer
) -> None:
    await _open_breaker(tier, server)
    server.start()
    await asyncio.sleep(0.6)  # half-open: the next call is the probe
    probe = asyncio.create_task(tier.get("k"))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert await tier.get("k") is None  # a new probe is let through, and closes it
    assert tier.breaker.state is BreakerState.CLOSED


class _BrokenTransport:
    """A client whose calls fail the way redis-py on uvloop does after a reset."""

    async def get(self, _name: str) -> bytes:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")


async def test_any_client_failure_is_a_tier_failure() -> None:
    tier = RedisTier(_BrokenTransport(), timeout=0.05)  # type: ignore[arg-type]
    with pytest.raises(TierUnavailable, match="RuntimeError"):
        await tier.get("k")
