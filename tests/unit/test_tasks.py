"""`cancel_and_wait` ends tasks that swallow a cancellation, and gives up on ones that never end."""

from __future__ import annotations

import asyncio
import contextlib

from cache.tasks import cancel_and_wait


async def test_a_task_that_swallows_one_cancellation_is_still_stopped() -> None:
    swallowed: list[bool] = []

    async def listener() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(True)  # as a wait_for racing its inner call may do

    task = asyncio.get_running_loop().create_task(listener())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, timeout=1.0)
    assert task.cancelled()
    assert swallowed == [True]


async def test_a_task_that_ignores_every_cancellation_is_reported_not_awaited_forever() -> None:
    stop = asyncio.Event()

    async def stubborn() -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(10)

    task = asyncio.get_running_loop().create_task(stubborn())
    await asyncio.sleep(0)
    assert not await cancel_and_wait(task, timeout=0.2)
    assert not task.done()
    stop.set()
    task.cancel()
    await asyncio.wait({task}, timeout=1.0)
    assert task.done()


async def test_a_finished_task_with_an_error_is_collected_quietly() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.get_running_loop().create_task(fails())
    await asyncio.wait({task})
    assert await cancel_and_wait(task)
