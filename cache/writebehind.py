"""`WriteBehind`: a tier whose writes go through a bounded queue, off the response path.

Reads and deletes go straight to the wrapped tier. `set` only enqueues; one background task
drains the queue. When the queue is full the write is refused, counted in `dropped` and
logged, never lost silently; a write that fails in the tier is counted in `failed`. `close`
drains what is queued, for at most `drain_timeout` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from cache.base import Entry, Tier, TierState
from cache.errors import TierUnavailable
from cache.tasks import cancel_and_wait

log = logging.getLogger("cache.writebehind")


class WriteBehind(Tier):
    def __init__(
        self,
        tier: Tier,
        *,
        limit: int = 1024,
        drain_timeout: float = 5.0,
        on_drop: Callable[[str], None] = lambda _name: None,
    ) -> None:
        self.name = tier.name
        self.tier = tier
        self.drain_timeout = drain_timeout
        self.dropped = 0
        self.failed = 0
        self.written = 0
        self._on_drop = on_drop
        self._queue: asyncio.Queue[tuple[str, Entry, float]] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def _ensure_worker(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            key, entry, expires_at = await self._queue.get()
            try:
                await self.tier.set(key, entry, expires_at - asyncio.get_running_loop().time())
                self.written += 1
            except TierUnavailable as exc:
                self.failed += 1
                log.warning("write-behind failed", extra={"tier": self.name, "error": str(exc)})
            except Exception:  # the worker must outlive any one write, or flush() never returns
                self.failed += 1
                log.exception("write-behind write raised", extra={"tier": self.name})
            finally:
                self._queue.task_done()

    async def get(self, key: str) -> Entry | None:
        return await self.tier.get(key)

    async def set(self, key: str, entry: Entry, expires_in: float) -> None:
        """Queue the write; the lifetime counts from now, not from when it is written."""
        self._ensure_worker()
        try:
            self._queue.put_nowait((key, entry, asyncio.get_running_loop().time() + expires_in))
        except asyncio.QueueFull:
            self.dropped += 1
            self._on_drop(self.name)
            log.warning(
                "write-behind queue full; write dropped",
                extra={"tier": self.name, "dropped": self.dropped},
            )

    async def delete(self, key: str) -> bool:
        return await self.tier.delete(key)

    async def expires_in(self, key: str) -> float | None:
        return await self.tier.expires_in(key)

    async def purge_tags(self, tags: Collection[str]) -> int:
        """Queued writes land first, so none of them can bring a purged entry back."""
        await self.flush()
        return await self.tier.purge_tags(tags)

    async def state(self) -> TierState:
        state = await self.tier.state()
        if state is TierState.OK and self._queue.full():
            return TierState.DEGRADED
        return state

    async def flush(self) -> None:
        """Wait until everything queued so far is written (or failed)."""
        if self._task is not None:
            await self._queue.join()

    async def close(self) -> None:
        try:
            async with asyncio.timeout(self.drain_timeout):
                await self.flush()
        except TimeoutError:
            log.warning(
                "write-behind not drained at close",
                extra={"tier": self.name, "pending": self.pending},
            )
        if self._task is not None:
            if self._task.get_loop() is asyncio.get_running_loop():
                await cancel_and_wait(self._task)
            else:
                self._task.cancel()
        await self.tier.close()
