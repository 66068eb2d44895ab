"""Redis clients from URLs: standalone, Sentinel and Cluster behind one call.

Accepted forms:
  redis://[user:pass@]host:port[/db]      standalone (rediss:// for TLS, unix:// for sockets)
  redis+sentinel://[user:pass@]host:port[,host:port...]/service[/db]
                                          the master of `service`, found through Sentinel
  redis+cluster://[user:pass@]host:port[,host:port...]
                                          a Redis Cluster, discovered from these seed nodes
Every client gets the same socket timeouts, so a stalled server costs at most that long.

Code that talks to these clients wraps its calls in `translate_redis_errors`, so what it
raises is a `regional.errors.StoreUnavailable` (or a subclass), never a driver error.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from cache.redis_tier import REDIS_FAILURES
from errors import ConfigurationError
from regional.errors import StoreUnavailable

RedisClient = Redis | RedisCluster


class RedisURLError(ConfigurationError):
    """A Redis URL this project cannot use (a ValueError, as the settings loader expects)."""


@contextmanager
def translate_redis_errors(
    what: str, error: type[StoreUnavailable] = StoreUnavailable
) -> Iterator[None]:
    """Turn what a Redis call can fail with (`REDIS_FAILURES`) into `error`, raised from it.

    Around awaited calls too: an exception leaves the awaited call through this block. A
    cancellation (an `asyncio.timeout` around the block expiring) is not a failure of Redis
    and passes through as it is.
    """
    try:
        yield
    except REDIS_FAILURES as exc:
        # redis-py's repr of its errors drops the message, which says what went wrong.
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise error(f"{what}: {reason}") from exc


def _hosts(netloc: str, url: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for part in netloc.rpartition("@")[2].split(","):
        host, _, port = part.strip().rpartition(":") if ":" in part else (part, "", "")
        if not host:
            raise RedisURLError(f"{url}: missing host in {part!r}")
        try:
            hosts.append((host.strip("[]"), int(port) if port else default_port))
        except ValueError:
            raise RedisURLError(f"{url}: bad port in {part!r}") from None
    return hosts


def credentials(netloc: str) -> dict[str, Any]:
    """redis-py's `username`/`password` arguments from a URL's user info."""
    userinfo, at, _ = netloc.rpartition("@")
    if not at:
        return {}
    user, colon, password = userinfo.partition(":")
    creds: dict[str, Any] = {"password": unquote(password if colon else user)}
    if colon and user:
        creds["username"] = unquote(user)
    return creds


class _SentinelMaster(Redis):
    """The master of a Sentinel service; closing it also closes the connections to the
    sentinels, which redis-py keeps apart from the master's pool."""

    watchers: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.watchers is not None:
            for client in self.watchers.sentinels:
                await client.aclose()


def redis_client(url: str, *, timeout: float, health_check_interval: float = 0) -> RedisClient:
    """A client for `url` whose connects and commands give up after `timeout` seconds.

    `health_check_interval` > 0 pings connections idle that long before using them again,
    which is how a pub/sub listener notices a server that stopped answering.
    """
    parts = urlsplit(url)
    common: dict[str, Any] = {
        "health_check_interval": health_check_interval,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # No client-side retries: the tier's own timeout and circuit breaker decide.
        "retry": Retry(NoBackoff(), 0),
    }
    if parts.scheme in ("redis", "rediss", "unix"):
        return Redis.from_url(url, **common)
    if parts.scheme == "redis+sentinel":
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise RedisURLError(f"{url}: name the Sentinel service, e.g. /mymaster")
        db = int(path[1]) if len(path) > 1 and path[1].isdigit() else 0
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            _hosts(parts.netloc, url, 26379),
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            **common,
            **credentials(parts.netloc),
            db=db,
        )
        master = sentinel.master_for(path[0], redis_class=_SentinelMaster)
        assert isinstance(master, _SentinelMaster)
        master.watchers = sentinel
        return master
    if parts.scheme == "redis+cluster":
        nodes = [ClusterNode(h, p) for h, p in _hosts(parts.netloc, url, 6379)]
        return RedisCluster(startup_nodes=nodes, **common, **credentials(parts.netloc))
    raise RedisURLError(
        f"{url}: unsupported scheme {parts.scheme!r} "
        "(use redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://)"
    )


def is_redis_url(value: str) -> bool:
    return urlsplit(value).scheme in ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster")


async def run_script(
    client: RedisClient, script: AsyncScript, calls: Sequence[tuple[list[str], list[Any]]]
) -> list[Any]:
    """Run `script` once per (keys, args), in order; the replies in the same order.

    On one server the calls go in one pipeline. A cluster refuses scripts in pipelines, so
    there the calls sharing a first key run one after another, in order, and different first
    keys (different streams, different nodes) run side by side.
    """
    if not isinstance(client, RedisCluster):
        async with client.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                # redis-py queues a script's EVALSHA on a pipeline given as its client
                await script(keys=keys, args=args, client=pipe)
            return list(await pipe.execute())
    replies: list[Any] = [None] * len(calls)
    by_key: defaultdict[str, list[int]] = defaultdict(list)
    for index, (keys, _args) in enumerate(calls):
        by_key[keys[0]].append(index)

    async def in_order(indices: list[int]) -> None:
        for index in indices:
            keys, args = calls[index]
            replies[index] = await script(keys=keys, args=args)

    try:
        async with asyncio.TaskGroup() as group:  # one failing cancels the others
            for indices in by_key.values():
                group.create_task(in_order(indices))
    except ExceptionGroup as failed:  # the caller handles the Redis error itself
        raise failed.exceptions[0] from None
    return replies
