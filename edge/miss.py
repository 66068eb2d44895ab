"""`MissPath`: what runs when no tier holds a usable entry for a key.

    lease (the region computes a key once) → encode → semantic neighbour? → generate → store

A semantic hit serves the nearest same-slots prompt's fresh answer under this key too; a
near miss lends its tracks to the fresh ranking (`edge.semantic`). A computed playlist is
rendered once, stored in every tier, announced to the region when it replaces an entry,
and remembered by the semantic index. When the encoder or index fails or is too slow, the
precomputed fallback lists answer, flagged degraded, kept briefly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import msgspec
from opentelemetry import trace

from cache.base import Entry
from cache.policy import FreshnessPolicy
from cache.semantic import SemanticIndex, SemanticMatch
from cache.tasks import cancel_and_wait
from cache.tiered import TieredCache
from edge import answers, telemetry
from edge.compute import ComputePool
from edge.errors import EdgeError
from edge.metrics import Metrics
from edge.region import RegionLease
from edge.semantic import SemanticCache, Verifier
from edge.settings import EdgeSettings
from edge.telemetry import span
from models.artifacts import Artifacts
from models.errors import ModelError
from models.generator import Timings
from models.intent import Intent
from models.ranker import Playlist
from regional.invalidation import InvalidationBus

log = logging.getLogger("edge.miss")

Rows = tuple[int, ...]


class ComputeFailed(EdgeError):
    """The miss path failed or timed out; the caller serves stale or the fallback (it never
    reaches a response)."""


class MissPath:
    """Computes, stores and announces the entries of one artifact version."""

    def __init__(
        self,
        artifacts: Artifacts,
        settings: EdgeSettings,
        *,
        cache: TieredCache,
        compute: ComputePool,
        metrics: Metrics,
        lease: RegionLease,
        clock: Callable[[], float],
        semantic: SemanticIndex | None = None,
        bus: InvalidationBus | None = None,
        tracer: trace.Tracer = telemetry.NO_TRACER,
        on_miss: Callable[[Intent, int, Playlist], None] | None = None,
    ) -> None:
        self.artifacts = artifacts
        self.version = artifacts.version
        self.settings = settings
        self.cache = cache
        self.compute = compute
        self.metrics = metrics
        self._policy = FreshnessPolicy(
            fresh=settings.ttl,
            revalidate=settings.stale_while_revalidate,
            stale_if_error=settings.stale_if_error,
            jitter=settings.ttl_jitter,
        )
        self._policy.rng.seed(settings.seed)
        self.lease = lease
        self._clock = clock
        self.bus = bus
        self.tracer = tracer
        self.on_miss = on_miss
        """Told of each playlist computed for a miss (the node's shadow comparisons)."""
        self.semantic = (
            None if semantic is None else SemanticCache(semantic, self._verifier(semantic))
        )
        """Semantic hits, near misses and their verification (None: exact keys only)."""
        self._verifying: asyncio.Task[None] | None = None

    def _verifier(self, semantic: SemanticIndex) -> Verifier | None:
        if self.settings.semantic_verify_rate <= 0:
            return None
        compute = self.compute
        return Verifier(
            semantic,
            self.artifacts.catalog,
            self.metrics,
            recompute=self._recompute,
            replace=self._replace,
            idle=lambda: compute.in_flight == 0,
            rate=self.settings.semantic_verify_rate,
            seed=self.settings.seed,
        )

    async def produce(
        self,
        key: str,
        intent: Intent,
        n: int,
        timings: dict[str, float],
        *,
        replacing: bool = False,
    ) -> tuple[Entry, str]:
        """A new entry (MISS), or one the region or a semantic neighbour already has, stored
        under `key`.

        With an L2, one edge of the region holds a short lease on computing `key` and the
        others wait for its answer in L2. A write that replaces an entry (revalidation) is
        announced to the region's edges.
        """
        with self.compute.admit():
            leased = None if replacing else await self.lease.acquire(key)
            try:
                if leased is False:
                    shared = await self.lease.wait(key)
                    if shared is not None:
                        return shared, "HIT-L2"
                return await self._compute(key, intent, n, timings, replacing=replacing)
            finally:
                if leased:
                    await self.lease.release(key)

    async def _compute(
        self, key: str, intent: Intent, n: int, timings: dict[str, float], *, replacing: bool
    ) -> tuple[Entry, str]:
        semantic = self.semantic if intent.query_text.strip() and not replacing else None
        try:
            with span(self.tracer, "compute"):
                async with asyncio.timeout(self.settings.compute_timeout):
                    encoded, embedded = None, Timings()
                    near: Rows = ()
                    if semantic is not None:  # encoded first, to look for a neighbour's answer
                        with span(self.tracer, "encode"):
                            encoded, embedded = await self.compute.embed(intent.query_text)
                        cpu = time.thread_time()
                        found = semantic.lookup(encoded[0], self.version, n, intent)
                        self._lookup_cpu(cpu)
                        if found.hit is not None and found.hit.key != key:
                            alias = await self._semantic_hit(found.hit, key)
                            if alias is not None:
                                self._check_semantic("hit", key, intent, n, found.hit.rows)
                                return alias, "SEMANTIC"
                        if found.near is not None:  # its tracks join the candidates
                            near = found.near.rows
                            self._check_semantic("near", key, intent, n, near)
                    playlist, stage_ms = await self.compute.generate(intent, n, encoded, near)
                    # Encoding is drawn here only if it ran inside `generate`.
                    if self.tracer is not telemetry.NO_TRACER:
                        telemetry.stage_spans(self.tracer, _stages(stage_ms), time.time_ns())
                    stage_ms = {**embedded, **stage_ms}
        except (ModelError, TimeoutError) as exc:
            log.warning(
                "compute failed",
                extra={"key": key, "prompt": intent.text, "error": repr(exc)},
            )
            raise ComputeFailed(str(exc)) from exc
        entry = await self.store(key, intent, n, playlist)
        if replacing and self.bus is not None:  # on the request path: a short wait at most
            await self.bus.publish(keys=(key,), timeout=self.settings.remote_timeout_ms / 1000)
        if semantic is not None and encoded is not None:
            cpu = time.thread_time()
            semantic.remember(encoded[0], key, self.version, n, intent, playlist.rows)
            self._lookup_cpu(cpu)
        if self.on_miss is not None:
            self.on_miss(intent, n, playlist)
        timings.update(_stages(stage_ms))
        self.metrics.stages({k: v for k, v in stage_ms.items() if k != "batch"})
        self.metrics.miss_compute.observe(_cost_ms(stage_ms) / 1000)
        return entry, "MISS"

    def _lookup_cpu(self, since: float) -> None:
        self.metrics.semantic_cpu.labels("lookup").inc(time.thread_time() - since)

    async def store(
        self,
        key: str,
        intent: Intent,
        n: int,
        playlist: Playlist,
        *,
        fresh: float | None = None,
        shared: bool = True,
    ) -> Entry:
        """A playlist's entry, written to the caches under `key` (`fresh`: a lifetime of its
        own; `shared`: False for a degraded answer)."""
        body = answers.render(self.artifacts.catalog, playlist, intent, n)
        entry = self._policy.entry(
            body,
            now=self._clock(),
            etag=answers.etag_of(body),
            tags=answers.surrogate_keys(intent, key, self.version, playlist.ids),
            fresh=fresh,
            shared=shared,
        )
        await self.cache.set(key, entry)
        return entry

    async def _recompute(self, intent: Intent, n: int) -> Playlist:
        """A fresh answer for a semantic check, with no neighbour's help."""
        playlist, stage_ms = await self.compute.generate(intent, n)
        self.metrics.semantic_cpu.labels("verify").inc(_cost_ms(stage_ms) / 1000)
        return playlist

    async def _replace(self, key: str, intent: Intent, n: int, playlist: Playlist) -> None:
        """A wrong semantic hit's entry gives way to the prompt's own answer."""
        await self.store(key, intent, n, playlist)
        self.metrics.cache_outcome("semantic", "replaced")
        log.warning("semantic hit was wrong; replaced", extra={"prompt": intent.text})

    def _check_semantic(self, kind: str, key: str, intent: Intent, n: int, rows: Rows) -> None:
        semantic = self.semantic
        if semantic is None or semantic.verifier is None:
            return
        if self._verifying is None:
            self._verifying = asyncio.get_running_loop().create_task(semantic.verifier.run())
        semantic.check(kind, key, intent, n, rows)

    async def _semantic_hit(self, match: SemanticMatch, key: str) -> Entry | None:
        """The fresh shared entry of the nearest same-slots prompt, now also under `key`."""
        lookup = await self.cache.get(match.key)
        if lookup is None or not lookup.entry.shared or not lookup.entry.is_fresh(self._clock()):
            return None
        # The alias: the same answer (its `prompt` names the prompt it was made for) under
        # this key too, so the next identical request is an exact hit.
        alias = msgspec.structs.replace(lookup.entry, tags=(*lookup.entry.tags, f"k:{key}"))
        await self.cache.set(key, alias)
        log.debug(
            "semantic hit",
            extra={"prompt": match.text, "similarity": round(match.similarity, 4)},
        )
        return alias

    async def fallback(self, key: str, intent: Intent, n: int) -> Entry:
        self.metrics.cache_outcome("compute", "fallback")
        playlist = self.compute.generator.fallback(intent, n)
        return await self.store(
            key, intent, n, playlist, fresh=self.settings.fallback_ttl, shared=False
        )

    async def close(self) -> None:
        if self._verifying is not None:
            await cancel_and_wait(self._verifying)


def _cost_ms(stage_ms: dict[str, float]) -> float:
    """A miss's compute cost: its share of the batch's encoding, then its own search and
    rank (milliseconds; the threads doing them are otherwise idle, so wall ≈ CPU)."""
    stages = _stages(stage_ms)
    return (
        stages["encode"] / max(1.0, stage_ms.get("batch", 1.0)) + stages["search"] + stages["rank"]
    )


def _stages(stage_ms: dict[str, float]) -> dict[str, float]:
    """A miss's compute stages in milliseconds: encode (with tokenizing), search, rank."""
    return {
        "encode": stage_ms.get("tokenize", 0.0) + stage_ms.get("encode", 0.0),
        "search": stage_ms.get("search", 0.0),
        "rank": stage_ms.get("rank", 0.0),
    }
