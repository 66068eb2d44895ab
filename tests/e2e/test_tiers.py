"""Edges sharing a region: L2 on a real redis-server, the global store on disk, faults."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import msgspec
import pytest

from cache.writebehind import WriteBehind
from tests.redis_server import RedisServer

from .conftest import Client, ClientFactory, service_of


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def _url(prompt: str) -> str:
    return "/v1/playlists?" + urlencode({"q": prompt, "n": 10})


def _tracks(body: bytes) -> list[str]:
    doc = msgspec.json.decode(body)
    return [t["id"] for t in doc["tracks"]]


async def _flush_global(client: Client) -> None:
    for tier in service_of(client).cache.tiers:
        if isinstance(tier, WriteBehind):
            await tier.flush()


def _fast_breaker(url: str) -> dict[str, object]:
    return {
        "l2_url": url,
        "remote_timeout_ms": 100.0,
        "breaker_min_calls": 2,
        "breaker_open_seconds": 0.3,
    }


async def test_second_edge_gets_first_edges_answer_from_l2(
    edge: ClientFactory, redis: RedisServer
) -> None:
    async with edge(l2_url=redis.url) as one, edge(l2_url=redis.url) as two:
        first = await one.get(_url("late night lofi for studying"))
        assert first.headers["x-cache"] == "MISS"
        second = await two.get(_url("late night lofi for studying"))
        assert second.headers["x-cache"] == "HIT-L2"
        assert second.headers["etag"] == first.headers["etag"]
        assert _tracks(second.content) == _tracks(first.content)
        assert msgspec.json.decode(second.content)["cache"]["tier"] == "L2"
        # Promoted: edge two now answers from its own L1.
        third = await two.get(_url("late night lofi for studying"))
        assert third.headers["x-cache"] == "HIT-L1"


async def test_redis_down_costs_nothing_but_latency(
    edge: ClientFactory, redis: RedisServer
) -> None:
    async with edge(**_fast_breaker(redis.url)) as one:
        known = await one.get(_url("happy pop for running"))
        assert known.status_code == 200
        redis.stop()
        for prompt in ("happy pop for running", "sad piano at night", "angry metal", "calm folk"):
            response = await one.get(_url(prompt))
            assert response.status_code == 200, response.text
        ready = await one.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["tiers"]["l2"] == "down"
        metrics = (await one.get("/metrics")).text
        assert 'edge_cache_total{kind="error",tier="l2"}' in metrics
        assert 'edge_breaker_state{tier="l2"} 2.0' in metrics


async def test_l2_is_used_again_after_redis_returns(
    edge: ClientFactory, redis: RedisServer
) -> None:
    async with edge(**_fast_breaker(redis.url)) as one, edge(**_fast_breaker(redis.url)) as two:
        redis.stop()
        assert (await one.get(_url("dreamy shoegaze"))).status_code == 200
        redis.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        attempt = 0
        while True:
            attempt += 1
            prompt = f"dreamy shoegaze {attempt}0s"
            await one.get(_url(prompt))
            if (await two.get(_url(prompt))).headers["x-cache"] == "HIT-L2":
                break
            assert loop.time() < deadline, "L2 not used again within 10 s of Redis returning"
            await asyncio.sleep(0.2)


async def test_global_store_answers_a_new_edge_without_l2(
    edge: ClientFactory, tmp_path: Path
) -> None:
    store = str(tmp_path / "global")
    async with edge(global_url=store) as one:
        first = await one.get(_url("sunny reggae for a road trip"))
        assert first.headers["x-cache"] == "MISS"
        await _flush_global(one)
    async with edge(global_url=store) as two:
        again = await two.get(_url("sunny reggae for a road trip"))
        assert again.headers["x-cache"] == "HIT-GLOBAL"
        assert _tracks(again.content) == _tracks(first.content)


async def test_fallbacks_stay_out_of_shared_tiers(edge: ClientFactory, redis: RedisServer) -> None:
    """A degraded answer is cached on the node that made it, never in L2."""
    async with edge(l2_url=redis.url) as one, edge(l2_url=redis.url) as two:
        service = service_of(one)

        async def broken(*_args: object) -> object:
            raise TimeoutError

        service.compute.generate = broken  # type: ignore[method-assign]
        degraded = await one.get(_url("spooky jazz"))
        assert degraded.headers["x-cache"] == "FALLBACK"
        fresh = await two.get(_url("spooky jazz"))
        assert fresh.headers["x-cache"] == "MISS"
