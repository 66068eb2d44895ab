"""`InvalidationBus`: purges and replacing writes, announced to every edge of a region.

Messages go over one Redis pub/sub channel. Pub/sub delivers at most once and only to
connected subscribers, so an edge that loses its subscription cannot know what it missed:
it flushes its L1 when it gets the subscription back (and keeps trying, with a pause, until
it does). A node ignores its own messages, having already applied them.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from cache.tasks import cancel_and_wait
from regional.connections import translate_redis_errors
from regional.errors import StoreUnavailable

log = logging.getLogger("regional.invalidation")


class Invalidation(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Drop these keys and every entry tagged with one of these tags."""

    origin: str
    keys: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()


_decode = msgspec.json.Decoder(Invalidation).decode


class InvalidationBus:
    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        channel: str,
        apply: Callable[[Invalidation], Awaitable[None]],
        reset: Callable[[], Awaitable[None]],
        retry: float = 0.5,
        node_id: str | None = None,
    ) -> None:
        self.client = client
        self.channel = channel
        self.node_id = node_id or uuid.uuid4().hex
        self.subscribed = False
        self.resets = 0
        self._apply = apply
        self._reset = reset
        self._retry = retry
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._listen())

    async def wait_subscribed(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            return False
        return True

    async def publish(
        self, keys: tuple[str, ...] = (), tags: tuple[str, ...] = (), *, timeout: float = 1.0
    ) -> bool:
        """Announce an invalidation; False if Redis could not take it within `timeout`."""
        message = msgspec.json.encode(Invalidation(self.node_id, keys, tags))
        try:
            async with asyncio.timeout(timeout):
                with translate_redis_errors("invalidation bus: publish"):
                    await self.client.publish(self.channel, message)
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("invalidation not published", extra={"error": repr(exc)})
            return False
        return True

    async def _listen(self) -> None:
        lost = False
        while True:
            try:
                await self._follow(lost)
            except Exception as exc:  # a listener that dies would stop invalidations for good
                if not isinstance(exc, StoreUnavailable):
                    log.exception("invalidation listener failed; restarting it")
                elif self.subscribed:
                    log.warning("invalidation subscription lost", extra={"error": repr(exc)})
                self.subscribed = False
                self._ready.clear()
                lost = True
                await asyncio.sleep(self._retry)

    async def _follow(self, lost: bool) -> None:
        """Subscribe, then apply messages until the subscription fails (`StoreUnavailable`)."""
        with translate_redis_errors("invalidation bus: subscription"):
            if isinstance(self.client, RedisCluster):
                await self.client.initialize()  # its pubsub needs the slot map first
            async with self.client.pubsub() as pubsub:
                await pubsub.subscribe(self.channel)
                self.subscribed = True
                self._ready.set()
                if lost:
                    # Whatever was published while we were away is unknown: start clean.
                    self.resets += 1
                    await self._reset()
                    log.warning("invalidation subscription restored; L1 flushed")
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self._handle(message["data"])

    async def _handle(self, data: bytes) -> None:
        try:
            invalidation = _decode(data)
        except msgspec.DecodeError:
            log.warning("unreadable invalidation message ignored")
            return
        if invalidation.origin != self.node_id:
            await self._apply(invalidation)

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        await self.client.aclose()
