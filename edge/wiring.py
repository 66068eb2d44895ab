"""`Wiring`: the composition root — every part a `PlaylistService` is made of, built once
from the settings and handed to constructors.

    L1 + (L2: Redis, breaker) + (global store: Redis or disk, behind write-behind) → TieredCache
    L2 → lease tier, invalidation bus, regional top-k      events → sessions, labels
    artifacts → ComputePool, SemanticIndex (calibrated thresholds) → PlaylistService

A candidate version shares the primary's tiers, listener state and region (`candidate`)
and has its own compute and semantic index. Lifecycle (loading, readiness, shutdown) is
`EdgeNode`'s; which version answers is `Versions`'.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from opentelemetry import trace
from prometheus_client import Gauge

from cache.base import Tier
from cache.breaker import BreakerState, CircuitBreaker
from cache.disk import DiskTier
from cache.errors import TierUnavailable
from cache.memory import MemoryTier
from cache.redis_tier import RedisTier
from cache.semantic import SemanticIndex
from cache.tiered import TieredCache
from cache.writebehind import WriteBehind
from edge import telemetry
from edge.compute import ComputePool
from edge.events import EventsPipeline, user_hash_key
from edge.metrics import Metrics
from edge.personalize import UserExclusions
from edge.region import Region
from edge.semantic import index_thresholds
from edge.service import OnMiss, PlaylistService
from edge.settings import EdgeSettings
from models.artifacts import Artifacts
from models.ranker import RankParams
from models.semantic import conflicts
from regional.connections import is_redis_url, redis_client
from regional.events import Pseudonymizer
from regional.invalidation import Invalidation, InvalidationBus
from regional.popular import RegionalTopK

log = logging.getLogger("edge.wiring")

_BREAKER_LEVEL = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}


class Wiring:
    """Builds services for one node's settings, metrics, clock and tracer."""

    def __init__(
        self,
        settings: EdgeSettings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        tracer: trace.Tracer = telemetry.NO_TRACER,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.clock = clock
        self.tracer = tracer

    def primary(
        self,
        artifacts: Artifacts,
        *,
        node_id: str,
        events: EventsPipeline | None,
        on_miss: OnMiss | None,
    ) -> tuple[PlaylistService, RegionalTopK | None]:
        """The first service of a node over `artifacts`, and the region's top-k of popular
        prompts (None without an L2)."""
        s, clock = self.settings, self.clock
        l1 = MemoryTier(s.l1_bytes, clock=clock, max_ttl=s.l1_max_ttl or None)
        cache = TieredCache(
            [l1, *self._remote_tiers()],
            clock=clock,
            on_error=self._tier_error,
            tracer=None if self.tracer is telemetry.NO_TRACER else self.tracer,
            on_write=lambda tier, size: self.metrics.tier_written.labels(tier).inc(size),
        )
        pseudonym = Pseudonymizer(user_hash_key(s), s.region, clock).user
        users = UserExclusions(
            MemoryTier(16 * 1024 * 1024, clock=clock, name="users"),
            pseudonym=pseudonym,
            max_items=s.user_exclusions_max,
            clock=clock,
        )
        bus, topk = None, None
        if s.l2_url:
            topk = RegionalTopK(redis_client(s.l2_url, timeout=1.0), s.region)
            # In a cluster, a PUBLISH reaches subscribers on every node.
            client = redis_client(s.l2_url, timeout=5.0, health_check_interval=1.0)
            bus = InvalidationBus(
                client,
                channel=f"edge:{s.region}:invalidate",
                apply=lambda invalidation: _drop_from(l1, invalidation),
                reset=lambda: _clear(l1),
            )
        region = Region(
            node_id=node_id,
            lease_tier=next(
                (t for t in cache.tiers if isinstance(t, RedisTier) and t.name == "l2"), None
            ),
            bus=bus,
            sessions=events.sessions if events is not None else None,
            labels=events.labels if events is not None else None,
            user_hash=pseudonym,
        )
        service = self._service(artifacts, l1, cache, users, region, on_miss, "primary")
        return service, topk

    def candidate(
        self, artifacts: Artifacts, primary: PlaylistService, on_miss: OnMiss | None
    ) -> PlaylistService:
        """A service over another version that shares `primary`'s tiers, listener state and
        region (but not its invalidation bus, which stays the primary's, nor its lease
        holder's id)."""
        region = dataclasses.replace(primary.region, node_id=uuid.uuid4().hex, bus=None)
        return self._service(
            artifacts, primary.l1, primary.cache, primary.exclusions, region, on_miss, "candidate"
        )

    def _service(
        self,
        artifacts: Artifacts,
        l1: MemoryTier,
        cache: TieredCache,
        users: UserExclusions,
        region: Region,
        on_miss: OnMiss | None,
        variant: str,
    ) -> PlaylistService:
        s = self.settings
        compute = ComputePool(
            artifacts.generator(RankParams(length=s.default_length, max_length=s.max_length)),
            threads=s.compute_threads,
            queue_limit=s.compute_queue,
            window=s.batch_window_ms / 1000,
            batch_size=s.batch_size,
            retry_after=s.retry_after,
            nice=s.compute_nice,
            on_batch=self.metrics.batch_size.observe,
        )
        return PlaylistService(
            artifacts,
            s,
            l1=l1,
            cache=cache,
            compute=compute,
            exclusions=users,
            metrics=self.metrics,
            clock=self.clock,
            semantic=self._semantic(artifacts, compute.generator.encoder.dim),
            region=region,
            tracer=self.tracer,
            on_miss=on_miss,
            variant=variant,
        )

    def _semantic(self, artifacts: Artifacts, dim: int) -> SemanticIndex | None:
        s = self.settings
        if not s.semantic:
            return None
        default, buckets = s.semantic_threshold, dict[str, float]()
        if artifacts.semantic is not None:  # calibrated on this version
            default, buckets = index_thresholds(artifacts.semantic)
        semantic = SemanticIndex(
            dim,
            capacity=s.semantic_capacity,
            threshold=default,
            thresholds=buckets,
            near_margin=s.semantic_near_margin,
            veto=conflicts,
        )
        for bucket, threshold in {"": semantic.threshold, **semantic.thresholds}.items():
            self.metrics.semantic_threshold.labels(bucket or "default").set(threshold)
        return semantic

    def _remote_tiers(self) -> list[Tier]:
        """L2 (Redis, if configured), then the global store behind a write-behind queue."""
        s = self.settings
        tiers: list[Tier] = []
        if s.l2_url:
            tiers.append(self._redis_tier("l2", s.l2_url))
        target = s.global_url or str(Path(s.data_dir) / "global")
        if target.lower() != "none":
            store = (
                self._redis_tier("global", target)
                if is_redis_url(target)
                else DiskTier(target, size_limit=s.global_bytes, clock=self.clock)
            )
            behind = WriteBehind(
                store,
                limit=s.write_behind_queue,
                on_drop=lambda name: self.metrics.write_behind_dropped.labels(name).inc(),
            )
            self.metrics.write_behind_pending.labels(store.name).set_function(
                lambda: behind.pending
            )
            tiers.append(behind)
        return tiers

    def _redis_tier(self, name: str, url: str) -> RedisTier:
        s = self.settings
        gauge = self.metrics.breaker.labels(name)
        breaker = CircuitBreaker(
            window=s.breaker_window,
            min_calls=s.breaker_min_calls,
            failure_rate=s.breaker_failure_rate,
            open_for=s.breaker_open_seconds,
            probes=s.breaker_probes,
            on_change=lambda state: _breaker_moved(name, state, gauge),
        )
        timeout = s.remote_timeout_ms / 1000
        return RedisTier(
            redis_client(url, timeout=timeout),
            name=name,
            # L2 and the global store can share one Redis (or cluster) and stay apart.
            prefix="edge:" if name == "l2" else f"{name}:",
            timeout=timeout,
            breaker=breaker,
            clock=self.clock,
        )

    def _tier_error(self, tier: str, exc: TierUnavailable) -> None:
        self.metrics.cache_outcome(tier, "error")
        log.warning("cache tier unavailable", extra={"tier": tier, "error": str(exc)})


def _breaker_moved(tier: str, state: BreakerState, gauge: Gauge) -> None:
    gauge.set(_BREAKER_LEVEL[state])
    log.warning("circuit breaker moved", extra={"tier": tier, "state": str(state)})


async def _drop_from(l1: MemoryTier, invalidation: Invalidation) -> None:
    """Another edge purged or replaced entries: drop our L1 copies."""
    for key in invalidation.keys:
        await l1.delete(key)
    if invalidation.tags:
        await l1.purge_tags(invalidation.tags)


async def _clear(l1: MemoryTier) -> None:
    """The invalidation feed was interrupted: nothing in L1 can be trusted to be current."""
    l1.clear()
