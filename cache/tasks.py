"""Stopping background tasks for certain, even when a library swallows the cancellation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("cache.tasks")


async def cancel_and_wait(task: asyncio.Task[Any], timeout: float = 2.0) -> bool:
    """Cancel `task` and wait for it to end; False if it still runs after `timeout` seconds.

    The cancellation is repeated until the task ends. On Python 3.11 `asyncio.wait_for`,
    which redis-py puts around every socket operation, can swallow a `CancelledError` that
    arrives just as the operation completes (CPython gh-86296); a listener loop told once
    to stop would then carry on, and whoever awaited it would wait forever.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done():
        remaining = deadline - loop.time()
        if remaining <= 0:
            log.warning("background task did not stop", extra={"task": task.get_name()})
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(0.05, remaining))
    if not task.cancelled():
        task.exception()  # retrieved: an error at shutdown is not worth a second report
    return True
