"""The `tier` fixture: every cache tier, each behind the same contract and a fake clock.

Redis runs as a real `redis-server` (one per session, flushed before each test); the disk tier
is a diskcache directory per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from cache.base import Tier
from cache.disk import DiskTier
from cache.memory import MemoryTier
from cache.redis_tier import RedisTier
from loadtest.redis_server import RedisServer
from tests.clock import FakeClock

TierFactory = Callable[[FakeClock, pytest.FixtureRequest], Tier]


def _redis(clock: FakeClock, request: pytest.FixtureRequest) -> Tier:
    server: RedisServer = request.getfixturevalue("contract_redis")
    return RedisTier(Redis.from_url(server.url), timeout=1.0, clock=clock)


def _disk(clock: FakeClock, request: pytest.FixtureRequest) -> Tier:
    tmp_path: Path = request.getfixturevalue("tmp_path")
    return DiskTier(tmp_path / "global", clock=clock)


FACTORIES: dict[str, TierFactory] = {
    "memory": lambda clock, _request: MemoryTier(1 << 20, clock=clock),
    "redis": _redis,
    "disk": _disk,
}


@pytest.fixture(scope="session")
def contract_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-contract")).start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=sorted(FACTORIES))
async def tier(request: pytest.FixtureRequest, clock: FakeClock) -> AsyncIterator[Tier]:
    made = FACTORIES[request.param](clock, request)
    if isinstance(made, RedisTier):
        await made.client.flushdb()
    yield made
    await made.close()
