"""Semantic hits on the edge: per-bucket thresholds, near misses, and online verification.

A lookup asks the `SemanticIndex` for the nearest cached prompt with the same signature
(version, length, slots) whose words do not conflict (`models.semantic.conflicts`), at or
above its bucket's threshold (calibrated into the artifact, `models.semantic`). Below the
threshold but within the index's margin, the match is a near miss: its answer's tracks join
the miss path's candidates, and the fresh ranking still decides.

`Verifier` recomputes a sampled share of semantic hits and near misses off the request path:
only while no miss is being computed, one at a time, from a bounded queue (a full queue
drops the newest sample and counts it). A hit is judged as `models.semantic.correct` defines;
per bucket it keeps the observed false-hit rate with its Clopper–Pearson upper bound. When
the bound passes the target, the bucket's threshold goes up a step; when near misses just
below it prove correct often enough for the bound to allow it, it comes down a step. Each
change is logged and the bucket's evidence starts again. A wrong hit's entry is replaced in
the caches by the fresh answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
import numpy as np

from cache.semantic import Lookup, SemanticIndex
from edge.metrics import Metrics
from models.catalog import Catalog
from models.intent import Intent
from models.ranker import Playlist
from models.semantic import Thresholds, bucket_of, correct, upper_bound

log = logging.getLogger("edge.semantic")


class BucketReport(msgspec.Struct, frozen=True):
    """One bucket of semantic hits as /readyz shows it."""

    threshold: float
    verified_hits: int
    wrong_hits: int
    verified_near: int
    false_hit_bound: float
    """The observed false-hit rate's upper bound at the verifier's confidence."""


Recompute = Callable[[Intent, int], Awaitable[Playlist]]
Replace = Callable[[str, Intent, int, Playlist], Awaitable[None]]


@dataclass
class BucketStats:
    """Verified outcomes since the bucket's threshold last changed."""

    hits: int = 0
    wrong: int = 0
    near: int = 0
    near_wrong: int = 0

    def bound(self, confidence: float) -> float:
        return upper_bound(self.wrong, self.hits, confidence)


@dataclass(frozen=True)
class Sample:
    kind: str  # "hit" or "near"
    key: str
    intent: Intent
    n: int
    served: tuple[int, ...]  # the neighbour's answer (rows)
    bucket: str


@dataclass
class Verifier:
    """Judges sampled semantic hits and near misses while compute is idle."""

    index: SemanticIndex
    catalog: Catalog
    metrics: Metrics
    recompute: Recompute
    replace: Replace
    idle: Callable[[], bool]
    rate: float = 0.02
    queue_size: int = 64
    target: float = 0.01
    confidence: float = 0.95
    min_evidence: int = 30
    """Fewest verified near misses before a threshold may come down."""
    step: float = 0.01
    ceiling: float = 0.99
    floor: float = 0.5
    seed: int = 0
    stats: dict[str, BucketStats] = field(default_factory=dict)
    _queue: collections.deque[Sample] = field(default_factory=collections.deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def offer(self, sample: Sample) -> None:
        """Queue a hit or near miss for judging, if sampled and there is room."""
        if not sample.served or self._rng.random() >= self.rate:
            return
        if len(self._queue) >= self.queue_size:
            self.metrics.semantic_dropped.inc()
            return
        self._queue.append(sample)
        self._ready.set()

    async def run(self, poll: float = 0.05) -> None:
        """Judge queued samples one at a time, each only once no miss is being computed."""
        while True:
            await self._ready.wait()
            while self._queue:
                while not self.idle():
                    await asyncio.sleep(poll)
                await self.verify(self._queue.popleft())
            self._ready.clear()

    async def verify(self, sample: Sample) -> bool | None:
        """Judge one sample; the outcome, or None if the fresh answer could not be made."""
        try:
            fresh = await self.recompute(sample.intent, sample.n)
        except Exception as exc:  # noqa: BLE001 - a failed check is skipped, never raised
            log.warning("semantic check failed", extra={"error": repr(exc)})
            return None
        cpu = time.thread_time()
        right = correct(
            self.catalog, np.array(sample.served), np.array(fresh.rows), sample.intent.slots
        )
        self.metrics.semantic_cpu.labels("verify").inc(time.thread_time() - cpu)
        stats = self.stats.setdefault(sample.bucket, BucketStats())
        outcome = "correct" if right else "wrong"
        self.metrics.semantic_verified.labels(sample.bucket, sample.kind, outcome).inc()
        if sample.kind == "hit":
            stats.hits += 1
            stats.wrong += not right
            if not right:
                with contextlib.suppress(Exception):
                    await self.replace(sample.key, sample.intent, sample.n, fresh)
                if stats.bound(self.confidence) > self.target:
                    self._move(sample.bucket, +self.step, stats)
        else:
            stats.near += 1
            stats.near_wrong += not right
            near_bound = upper_bound(stats.near_wrong, stats.near, self.confidence)
            if stats.near >= self.min_evidence and near_bound <= self.target:
                self._move(sample.bucket, -self.step, stats)
        self.metrics.semantic_bound.labels(sample.bucket).set(stats.bound(self.confidence))
        return right

    def _move(self, bucket: str, by: float, stats: BucketStats) -> None:
        old = self.index.threshold_of(bucket)
        new = round(min(self.ceiling, max(self.floor, old + by)), 4)
        if new == old:
            return
        self.index.thresholds[bucket] = new
        self.metrics.semantic_threshold.labels(bucket).set(new)
        log.warning(
            "semantic threshold changed",
            extra={
                "bucket": bucket,
                "from": old,
                "to": new,
                "verified_hits": stats.hits,
                "wrong_hits": stats.wrong,
                "verified_near": stats.near,
                "wrong_near": stats.near_wrong,
            },
        )
        self.stats[bucket] = BucketStats()

    def report(self) -> dict[str, BucketReport]:
        """Per bucket: threshold, verified hits, wrong hits and the bound (for /readyz)."""
        buckets = set(self.stats) | set(self.index.thresholds)
        report = {}
        for name in sorted(buckets):
            stats = self.stats.get(name, BucketStats())
            report[name] = BucketReport(
                threshold=self.index.threshold_of(name),
                verified_hits=stats.hits,
                wrong_hits=stats.wrong,
                verified_near=stats.near,
                false_hit_bound=round(stats.bound(self.confidence), 4),
            )
        return report


def index_thresholds(calibrated: Thresholds) -> tuple[float, dict[str, float]]:
    """An artifact's thresholds as the index takes them (default, per bucket): "never"
    (`NEVER`, above any cosine) becomes 1.0, the most the index allows."""
    return min(calibrated.default, 1.0), {b: min(t, 1.0) for b, t in calibrated.buckets.items()}


def signature(version: str, n: int, intent: Intent) -> str:
    """What two prompts must share for one to be served the other's answer."""
    return f"{version}|{n}|{msgspec.json.encode(intent.slots).decode()}"


@dataclass
class SemanticCache:
    """The semantic side of a lookup: what to serve, what to offer the ranker, what to check."""

    index: SemanticIndex
    verifier: Verifier | None = None

    def lookup(self, vector: np.ndarray, version: str, n: int, intent: Intent) -> Lookup:
        return self.index.lookup(
            vector, signature(version, n, intent), bucket_of(intent.slots), intent.words or ()
        )

    def remember(
        self,
        vector: np.ndarray,
        key: str,
        version: str,
        n: int,
        intent: Intent,
        rows: tuple[int, ...],
    ) -> None:
        self.index.add(
            vector, key, signature(version, n, intent), intent.text, intent.words or (), rows
        )

    def check(self, kind: str, key: str, intent: Intent, n: int, served: tuple[int, ...]) -> None:
        if self.verifier is not None:
            self.verifier.offer(Sample(kind, key, intent, n, served, bucket_of(intent.slots)))
