"""The micro-batcher groups concurrent prompts; the bulkhead refuses beyond its limit."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from edge.compute import ComputePool, MicroBatcher, run_lowered
from edge.errors import Overloaded
from models.generator import PlaylistGenerator, Timings
from models.intent import IntentParser
from models.titles import Example, learn

TITLES = ("sunday brunch", "heavy metal gym", "rainy jazz night", "summer road trip")


def _recording_embed(batches: list[list[str]], gate: threading.Event | None = None):
    def embed(texts: list[str], timings: Timings) -> np.ndarray:
        if gate is not None:
            gate.wait(5)
        batches.append(list(texts))
        return np.array([[float(len(t))] for t in texts], dtype=np.float32)

    return embed


async def test_concurrent_prompts_share_one_batch() -> None:
    """Prompts arriving within the window are encoded together, each getting its own row."""
    batches: list[list[str]] = []
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(_recording_embed(batches), pool, window=0.05, batch_size=32)
        texts = ["a", "bb", "ccc", "dddd"]
        results = await asyncio.gather(*(batcher.embed(t) for t in texts))
    assert batches == [texts]
    assert [float(v[0]) for v, _ in results] == [1.0, 2.0, 3.0, 4.0]


async def test_a_full_batch_goes_at_once_and_the_rest_follows() -> None:
    """More prompts than batch_size split into batches no larger than it."""
    batches: list[list[str]] = []
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(_recording_embed(batches), pool, window=10.0, batch_size=3)
        results = await asyncio.gather(*(batcher.embed(str(i) * (i + 1)) for i in range(7)))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [float(v[0]) for v, _ in results] == [float(i + 1) for i in range(7)]


async def test_arrivals_during_a_batch_wait_for_it_then_go_together() -> None:
    """While the encoder is busy, new prompts gather into the next batch."""
    batches: list[list[str]] = []
    gate = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(_recording_embed(batches, gate), pool, window=0, batch_size=32)
        first = asyncio.ensure_future(batcher.embed("first"))
        await asyncio.sleep(0.01)
        later = [asyncio.ensure_future(batcher.embed(t)) for t in ("x", "y", "z")]
        await asyncio.sleep(0.01)
        gate.set()
        await asyncio.gather(first, *later)
    assert batches == [["first"], ["x", "y", "z"]]


async def test_encoder_errors_reach_every_caller_of_the_batch() -> None:
    def broken(texts: list[str], timings: Timings) -> np.ndarray:
        raise RuntimeError("onnx down")

    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(broken, pool, window=0.01, batch_size=8)
        results = await asyncio.gather(
            batcher.embed("a"), batcher.embed("b"), return_exceptions=True
        )
    assert all(isinstance(r, RuntimeError) for r in results)


def test_bulkhead_refuses_beyond_its_limit(fake_generator: PlaylistGenerator) -> None:
    """The (limit+1)-th admission raises Overloaded with a Retry-After; leaving frees a place."""
    pool = ComputePool(
        fake_generator, threads=1, queue_limit=2, window=0, batch_size=4, retry_after=3
    )
    try:
        with pool.admit(), pool.admit():
            assert pool.overloaded
            with pytest.raises(Overloaded) as caught, pool.admit():
                pass
            assert caught.value.retry_after == 3
        assert pool.in_flight == 0
        with pool.admit():
            assert pool.in_flight == 1
    finally:
        pool.close()


def _niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


async def test_compute_threads_run_below_the_event_loop(fake_generator: PlaylistGenerator) -> None:
    pool = ComputePool(
        fake_generator, threads=1, queue_limit=2, window=0, batch_size=4, retry_after=1, nice=5
    )
    try:
        loop = asyncio.get_running_loop()
        base = _niceness()
        assert await loop.run_in_executor(pool._encoder_thread, _niceness) == base + 5
        assert await loop.run_in_executor(pool._rank_threads, _niceness) == base + 5
        assert _niceness() == base  # the event loop's thread is left as it was
    finally:
        pool.close()


async def test_threads_made_by_a_lowered_call_inherit_its_priority() -> None:
    """As onnxruntime's intra-op threads do when the encoder session is made while loading."""

    def spawn_and_read() -> tuple[int, int]:
        seen: list[int] = []
        child = threading.Thread(target=lambda: seen.append(_niceness()))
        child.start()
        child.join()
        return _niceness(), seen[0]

    base = _niceness()
    assert await run_lowered(3, spawn_and_read) == (base + 3, base + 3)
    assert _niceness() == base


async def test_title_votes_are_searched_once_per_encoder_batch(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """Misses that share an encoder batch share one title-index query; each gets its own
    votes, the same as a miss computed alone."""
    catalog = fake_generator.catalog
    examples = [Example(title, np.arange(i * 10, i * 10 + 10)) for i, title in enumerate(TITLES)]
    titles = learn(examples, len(catalog), fake_generator.encoder.encode, progress=False)
    queries: list[int] = []
    search = titles.index.knn_query

    def counted(vectors: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        queries.append(len(vectors))
        return search(vectors, *args, **kwargs)

    titles.index = SimpleNamespace(knn_query=counted, dim=titles.index.dim)  # type: ignore[assignment]
    generator = PlaylistGenerator(
        catalog=catalog,
        index=fake_generator.ranker.index,
        encoder=fake_generator.encoder,
        fallbacks=fake_generator.fallbacks,
        version="vtitles",
        titles=titles,
    )
    pool = ComputePool(
        generator, threads=2, queue_limit=8, window=0.05, batch_size=8, retry_after=1
    )
    try:
        intents = [parser.parse(title) for title in TITLES]
        batched = await asyncio.gather(*(pool.generate(i, 10) for i in intents))
    finally:
        pool.close()
    assert queries == [len(TITLES)]
    for intent, (playlist, timings) in zip(intents, batched, strict=True):
        assert timings["batch"] == len(TITLES)
        assert playlist.rows == generator.generate(intent, 10)[0].rows
