"""The miss path off the event loop: a bulkhead, micro-batched encoding, search and rank.

Misses are admitted up to `queue_limit` at once (queued or running); beyond that `admit`
raises `Overloaded` at once, so a burst of misses turns into fast 503s while hits, which
never come here, keep flowing. Prompts waiting for the encoder are gathered into one batch
(up to `batch_size`, waiting at most `window` seconds for the first one to get company):
onnxruntime releases the GIL, and a batch of 32 encodes ~2x faster per prompt than one by
one on two cores. The title model's searches run per batch too (one hnswlib query for all
of its vectors); search and ranking then run per request on their own small pool.

With the int8 encoder a prompt's vector depends slightly on its batch mates (activations
share one quantization scale per batch: cosine ≥ 0.96 to its batch-1 vector), so the first
computation of a key decides its playlist; the caches keep that answer from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from edge.errors import Overloaded
from models.generator import PlaylistGenerator, Timings
from models.intent import Intent
from models.ranker import Playlist
from models.titles import Votes

Encoded = tuple[np.ndarray, Votes]
"""A prompt's unit vector and the title model's votes for it."""
EmbedFn = Callable[[list[str], Timings], Sequence[Any]]  # one result per text, in order
T = TypeVar("T")


class MicroBatcher:
    """Collects texts from many coroutines and embeds them together on one thread."""

    def __init__(
        self,
        embed: EmbedFn,
        executor: ThreadPoolExecutor,
        *,
        window: float,
        batch_size: int,
        on_batch: Callable[[int], None] = lambda _size: None,
    ) -> None:
        self._embed = embed
        self._executor = executor
        self.window = window
        self.batch_size = batch_size
        self._on_batch = on_batch
        self._pending: list[tuple[str, asyncio.Future[tuple[Any, Timings]]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._busy = False

    async def embed(self, text: str) -> tuple[Any, Timings]:
        """The text's result (its row of the batch) and the timings of the batch."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Any, Timings]] = loop.create_future()
        self._pending.append((text, future))
        if not self._busy:
            if len(self._pending) >= self.batch_size or self.window <= 0:
                self._flush()
            elif self._timer is None:
                self._timer = loop.call_later(self.window, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch = [(t, f) for t, f in self._pending[: self.batch_size] if not f.done()]
        del self._pending[: self.batch_size]
        if not batch:
            if self._pending:
                self._flush()
            return
        self._busy = True
        self._on_batch(len(batch))
        loop = asyncio.get_running_loop()
        timings: Timings = {"batch": len(batch)}
        work = self._executor.submit(self._embed, [t for t, _ in batch], timings)
        work.add_done_callback(
            lambda done: loop.call_soon_threadsafe(self._finish, batch, done, timings)
        )

    def _finish(
        self,
        batch: Sequence[tuple[str, asyncio.Future[tuple[Any, Timings]]]],
        done: Future[Sequence[Any]],
        timings: Timings,
    ) -> None:
        self._busy = False
        error = done.exception()
        for row, (_, future) in enumerate(batch):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result((done.result()[row], timings))
        # Whatever arrived meanwhile has already waited a whole batch: go at once.
        if self._pending:
            self._flush()

    @property
    def waiting(self) -> int:
        return len(self._pending)


def _lower_priority(nice: int) -> None:
    """Run the calling thread `nice` steps below the rest of the process (Linux: priority is
    per thread), so a saturated miss path leaves the CPU to the event loop serving hits."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


async def run_lowered(nice: int, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn` on a thread of its own `nice` steps down. Threads it creates inherit that, which
    is how onnxruntime's intra-op pool, made when an encoder session is, ends up there too."""
    lower = (lambda: _lower_priority(nice)) if nice else None
    with ThreadPoolExecutor(1, "load", initializer=lower) as pool:
        return await asyncio.get_running_loop().run_in_executor(
            pool, functools.partial(fn, *args, **kwargs)
        )


class ComputePool:
    """Bounded, batched miss computation over one artifact version's generator."""

    def __init__(
        self,
        generator: PlaylistGenerator,
        *,
        threads: int,
        queue_limit: int,
        window: float,
        batch_size: int,
        retry_after: int,
        nice: int = 0,
        on_batch: Callable[[int], None] = lambda _size: None,
    ) -> None:
        self.generator = generator
        self.queue_limit = queue_limit
        self.retry_after = retry_after
        lower = (lambda: _lower_priority(nice)) if nice else None
        self._encoder_thread = ThreadPoolExecutor(1, "encode", initializer=lower)
        self._rank_threads = ThreadPoolExecutor(threads, "rank", initializer=lower)
        self.encode: Callable[[list[str], Timings], np.ndarray] = generator.embed
        """Encodes a batch of texts (`edge.hooks` wraps it to inject a drill's faults)."""
        self.closing: list[Callable[[], None]] = []
        """Called at `close` (a drill's wrapped encoder ends its hung calls)."""
        self._batcher = MicroBatcher(
            self._embed,
            self._encoder_thread,
            window=window,
            batch_size=batch_size,
            on_batch=on_batch,
        )
        self.in_flight = 0

    def _embed(self, texts: list[str], timings: Timings) -> list[Encoded]:
        vectors = self.encode(texts, timings)
        return list(zip(vectors, self.generator.votes(vectors, timings), strict=True))

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of `queue_limit` places, or raise `Overloaded` if none is free."""
        if self.in_flight >= self.queue_limit:
            raise Overloaded(
                f"{self.in_flight} playlists are being computed; try again shortly",
                self.retry_after,
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    @property
    def overloaded(self) -> bool:
        return self.in_flight >= self.queue_limit

    async def embed(self, text: str) -> tuple[Encoded, Timings]:
        """The text's unit vector and title votes (batched with other callers'); call
        inside `admit`."""
        encoded: Encoded
        encoded, timings = await self._batcher.embed(text)
        return encoded, timings

    async def generate(
        self,
        intent: Intent,
        n: int,
        encoded: Encoded | None = None,
        extra: Sequence[int] = (),
    ) -> tuple[Playlist, Timings]:
        """Encode (batched) unless `encoded` is given, then search and rank on the rank pool
        (`extra`: rows that join the candidates); call inside `admit`."""
        start = time.perf_counter()
        batch_timings: Timings = {}
        if encoded is None:
            encoded, batch_timings = await self.embed(intent.query_text)
        vector, votes = encoded
        loop = asyncio.get_running_loop()
        playlist, timings = await loop.run_in_executor(
            self._rank_threads, self.generator.generate, intent, n, vector, votes, extra
        )
        timings.update(batch_timings)
        timings["compute"] = (time.perf_counter() - start) * 1000
        return playlist, timings

    async def fallback(self, intent: Intent, n: int) -> Playlist:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._rank_threads, self.generator.fallback, intent, n)

    def close(self) -> None:
        for step in self.closing:
            step()
        self._encoder_thread.shutdown(wait=False, cancel_futures=True)
        self._rank_threads.shutdown(wait=False, cancel_futures=True)
