"""`SingleFlight`: concurrent work for one key runs once; every caller gets its outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Coalesces calls by key while one is in flight (like Go's x/sync/singleflight).

    The shared work runs as its own task, so a caller that is cancelled (a client that
    disconnected, a timeout) neither cancels it nor loses it for the others.
    """

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Task[T]] = {}

    def start(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[asyncio.Task[T], bool]:
        """The task computing `key` and whether this call started it."""
        task = self._calls.get(key)
        if task is not None:
            return task, False
        task = asyncio.ensure_future(work())
        self._calls[key] = task
        task.add_done_callback(lambda done: self._finish(key, done))
        return task, True

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Await the shared result; the flag says whether this call did the work."""
        task, leader = self.start(key, work)
        return await asyncio.shield(task), leader

    def _finish(self, key: str, task: asyncio.Task[T]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # marks it retrieved: no "never retrieved" warning if all left

    def __contains__(self, key: str) -> bool:
        return key in self._calls

    def __len__(self) -> int:
        return len(self._calls)
