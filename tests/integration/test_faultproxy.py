"""The fault proxy in front of a real redis-server: each fault as a Redis client sees it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from loadtest.faultproxy import FaultProxy, send_command
from loadtest.net import free_port
from loadtest.redis_server import RedisServer


@pytest.fixture
def server(redis_server: RedisServer) -> RedisServer:
    return redis_server


@pytest.fixture
async def proxy(server: RedisServer) -> AsyncIterator[FaultProxy]:
    made = await FaultProxy(("127.0.0.1", server.port)).start(control_port=free_port())
    yield made
    await made.close()


def _client(proxy: FaultProxy, timeout: float = 1.0) -> Redis:
    """A client that does not retry, so each fault shows on the first call."""
    return Redis(
        host="127.0.0.1", port=proxy.port, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


async def test_passes_traffic_through(proxy: FaultProxy) -> None:
    client = _client(proxy)
    await client.set("k", b"v")
    assert await client.get("k") == b"v"
    await client.aclose()


async def test_latency_is_added_per_round_trip(proxy: FaultProxy) -> None:
    client = _client(proxy)
    await client.ping()
    proxy.apply("latency 200")
    started = time.perf_counter()
    await client.ping()
    assert time.perf_counter() - started >= 0.4  # both directions
    proxy.apply("clear")
    started = time.perf_counter()
    await client.ping()
    assert time.perf_counter() - started < 0.2
    await client.aclose()


async def test_blackhole_accepts_and_never_answers(proxy: FaultProxy) -> None:
    client = _client(proxy, timeout=0.3)
    await client.ping()
    proxy.apply("blackhole on")
    with pytest.raises(RedisTimeoutError):
        await client.ping()
    await client.aclose()


async def test_reset_aborts_open_and_new_connections(proxy: FaultProxy) -> None:
    client = _client(proxy)
    await client.ping()
    assert proxy.apply("reset on") == "ok"
    with pytest.raises(RedisConnectionError):
        await client.ping()
    proxy.apply("reset off")
    assert await client.ping()
    await client.aclose()


async def test_control_port_and_bad_commands(proxy: FaultProxy) -> None:
    assert proxy._control is not None
    port = proxy._control.sockets[0].getsockname()[1]
    reply = await asyncio.to_thread(send_command, port, "latency 5")
    assert reply == "ok"
    assert proxy.faults.latency_ms == 5
    assert (await asyncio.to_thread(send_command, port, "latency fast")).startswith("error")
    assert (await asyncio.to_thread(send_command, port, "explode")).startswith("error")
