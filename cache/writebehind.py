"""`WriteBehind`: a tier whose writes go through a bounded queue, off the response path.

Reads go straight to the wrapped tier. `set` only enqueues; one background task drains the
queue in order. A tier that writes batches as one operation (`Tier.batch_writes`) gets
whatever has queued up, at most `batch_limit` writes, in one `set_many`: a busy node then
pays one SQLite commit for many writes. Other tiers get one write at a time.

While the tier is unavailable the worker holds the writes at the head of the queue and
retries them with a capped exponential backoff, so an outage of the store loses nothing
that fits in the queue: the backlog drains when it returns. A write whose entry
expires while it waits is let go (counted in `expired`). When the queue is full the new
write is refused, counted in `dropped` and logged, never lost silently; a write that raises
anything else is counted in `failed` and not retried (it would fail the same way again).

Deletes and tag purges reach the tier at once and also cancel the queued writes they cover,
so a write queued before a purge can never land after it and bring the entry back. `close`
drains what is queued, for at most `drain_timeout` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Collection
from typing import NamedTuple

from cache.base import Entry, Tier, TierState
from cache.errors import TierUnavailable
from cache.tasks import cancel_and_wait

log = logging.getLogger("cache.writebehind")


class _Write(NamedTuple):
    seq: int
    key: str
    entry: Entry
    expires_at: float  # event-loop time


class _Purge(NamedTuple):
    seq: int  # writes numbered below this were queued before the purge
    keys: frozenset[str]
    tags: frozenset[str]

    def covers(self, write: _Write) -> bool:
        return write.seq < self.seq and (
            write.key in self.keys or not self.tags.isdisjoint(write.entry.tags)
        )


class WriteBehind(Tier):
    def __init__(
        self,
        tier: Tier,
        *,
        limit: int = 1024,
        batch_limit: int = 64,
        drain_timeout: float = 5.0,
        retry_initial: float = 0.05,
        retry_max: float = 2.0,
        on_drop: Callable[[str], None] = lambda _name: None,
    ) -> None:
        self.name = tier.name
        self.tier = tier
        self.batch_limit = batch_limit
        self.drain_timeout = drain_timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.dropped = 0
        self.failed = 0
        self.expired = 0
        self.cancelled = 0
        self.retries = 0
        self.written = 0
        self.holding = False
        """True while the head writes wait for the tier to come back."""
        self._current: list[_Write] = []
        self._on_drop = on_drop
        self._queue: asyncio.Queue[_Write] = asyncio.Queue(limit)
        self._purges: deque[_Purge] = deque()
        self._seq = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Writes not yet landed, including those being written or retried."""
        return self._queue.qsize() + len(self._current)

    def _ensure_worker(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            batch = [await self._queue.get()]
            limit = self.batch_limit if self.tier.batch_writes else 1
            while len(batch) < limit and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._current = batch
            try:
                await self._land(batch)
            except Exception:  # the worker must outlive any one write, or flush() never returns
                self.failed += len(self._current)  # those not already cancelled or expired
                log.exception("write-behind write raised", extra={"tier": self.name})
            finally:
                self.holding = False
                self._current = []
                for _ in batch:
                    self._queue.task_done()

    async def _land(self, batch: list[_Write]) -> None:
        loop = asyncio.get_running_loop()
        delay = self.retry_initial
        while True:
            # Purges older than the first write left can no longer cover anything queued.
            while self._purges and self._purges[0].seq <= batch[0].seq:
                self._purges.popleft()
            now, live = loop.time(), []
            for write in batch:
                if any(purge.covers(write) for purge in self._purges):
                    self.cancelled += 1
                elif write.expires_at <= now:
                    self.expired += 1
                else:
                    live.append(write)
            if not live:
                return
            batch = self._current = live
            try:
                await self.tier.set_many([(w.key, w.entry, w.expires_at - now) for w in batch])
            except TierUnavailable as exc:
                if not self.holding:
                    log.warning(
                        "write-behind holding writes until the tier returns",
                        extra={"tier": self.name, "pending": self.pending, "error": str(exc)},
                    )
                self.holding = True
                self.retries += 1
                await asyncio.sleep(delay)
                delay = min(2 * delay, self.retry_max)
                continue
            if self.holding:
                log.warning(
                    "write-behind draining again",
                    extra={"tier": self.name, "pending": self.pending},
                )
            self.written += len(batch)
            return

    async def get(self, key: str) -> Entry | None:
        return await self.tier.get(key)

    async def set(self, key: str, entry: Entry, expires_in: float) -> None:
        """Queue the write; the lifetime counts from now, not from when it is written."""
        self._ensure_worker()
        write = _Write(self._seq, key, entry, asyncio.get_running_loop().time() + expires_in)
        try:
            self._queue.put_nowait(write)
            self._seq += 1
        except asyncio.QueueFull:
            self.dropped += 1
            self._on_drop(self.name)
            log.warning(
                "write-behind queue full; write dropped",
                extra={"tier": self.name, "dropped": self.dropped},
            )

    async def delete(self, key: str) -> bool:
        self._cancel_queued(keys=(key,))
        return await self.tier.delete(key)

    async def expires_in(self, key: str) -> float | None:
        return await self.tier.expires_in(key)

    async def purge_tags(self, tags: Collection[str]) -> int:
        self._cancel_queued(tags=tags)
        return await self.tier.purge_tags(tags)

    async def tagged(self, tags: Collection[str]) -> frozenset[str]:
        return await self.tier.tagged(tags)

    async def soften(self, keys: Collection[str], tags: Collection[str], now: float) -> int:
        # A queued write of a fresh copy would land after the soft purge and undo it.
        self._cancel_queued(keys=keys, tags=tags)
        return await self.tier.soften(keys, tags, now)

    def _cancel_queued(self, keys: Collection[str] = (), tags: Collection[str] = ()) -> None:
        """Writes queued before now for `keys`, or tagged with `tags`, will not land."""
        if self.pending:
            self._purges.append(_Purge(self._seq, frozenset(keys), frozenset(tags)))

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
