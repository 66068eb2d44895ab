"""`EdgeNode`: what one process serves — settings, metrics, and the service once loaded.

Artifacts load in the background after startup, so /healthz answers at once and /readyz
says "loading" until the version is verified and warm.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

from opentelemetry import trace
from prometheus_client import Gauge

from cache.base import Tier
from cache.breaker import BreakerState, CircuitBreaker
from cache.disk import DiskTier
from cache.errors import TierUnavailable
from cache.memory import MemoryTier
from cache.redis_tier import REDIS_FAILURES, RedisTier
from cache.semantic import SemanticIndex
from cache.tasks import cancel_and_wait
from cache.tiered import TieredCache
from cache.writebehind import WriteBehind
from edge.auth import Authenticator, load_keys
from edge.compute import ComputePool, run_lowered
from edge.errors import NotReady
from edge.events import EventsPipeline, user_hash_key
from edge.metrics import Metrics
from edge.personalize import UserExclusions
from edge.ratelimit import RateLimiter
from edge.service import PlaylistService
from edge.settings import EdgeSettings
from models import artifacts as model_artifacts
from models.artifacts import Artifacts
from models.ranker import RankParams
from regional.connections import is_redis_url, redis_client
from regional.events import Pseudonymizer
from regional.invalidation import InvalidationBus
from regional.popular import RegionalTopK

log = logging.getLogger("edge.node")

_BREAKER_LEVEL = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}

WARMUP_PROMPTS = ["rainy sunday morning jazz", "no vocals, deep focus", "upbeat running mix"]


class EdgeNode:
    """Owns the loaded service and reports readiness."""

    def __init__(
        self,
        settings: EdgeSettings,
        *,
        artifacts: Artifacts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.tracer: trace.Tracer = trace.NoOpTracer()
        """Set by the app when traces are on (`edge.telemetry`)."""
        keys = settings.api_keys_file
        self.auth = Authenticator(load_keys(Path(keys)) if keys else None)
        self.limiter = RateLimiter(settings) if settings.rate_limit else None
        self.service: PlaylistService | None = None
        self.state = "loading"
        self.error = ""
        self._preloaded = artifacts
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.bench_bodies: dict[bytes, bytes] = {}
        self.topk: RegionalTopK | None = None
        self._sharing: asyncio.Task[None] | None = None
        self.events: EventsPipeline | None = None
        self.lean_hits = True

    def require(self) -> PlaylistService:
        """The service, or NotReady (503 + Retry-After) while loading or after a failed load."""
        if self.service is None:
            raise NotReady(
                f"edge node is {self.state}{': ' + self.error if self.error else ''}",
                self.settings.retry_after,
            )
        return self.service

    def start(self) -> None:
        if self.auth.open:
            log.warning("no API keys configured (EDGE_API_KEYS_FILE): every client is served")
        self._task = asyncio.create_task(self._load())

    async def wait_ready(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _load(self) -> None:
        started = time.perf_counter()
        service: PlaylistService | None = None
        try:
            artifacts = self._preloaded
            if artifacts is None:
                artifacts = await run_lowered(
                    self.settings.compute_nice,
                    model_artifacts.load,
                    Path(self.settings.artifacts),
                    encoder_threads=self.settings.encoder_threads,
                    check=self.settings.verify_artifacts,
                )
            service = self._assemble(artifacts)
            for tier in await self._connect(service):
                log.warning("cache tier not reachable at start", extra={"tier": tier})
            self.events = EventsPipeline.build(
                self.settings, self.metrics, service.node_id, self._clock
            )
            if self.events is not None:
                service.sessions = self.events.sessions
                service.labels = self.events.labels
            if service.bus is not None:
                service.bus.start()
                if not await service.bus.wait_subscribed(timeout=2.0):
                    log.warning("invalidation bus not subscribed yet; continuing without it")
            if self.topk is not None and self.settings.prewarm_top > 0:
                await self._prewarm(service, self.topk)
            if self.settings.warmup:
                await service.warm_up(WARMUP_PROMPTS)
        except Exception as exc:  # noqa: BLE001 - the loading task's top: report, never hang
            # Whatever stops the load (bad artifacts, a bad tier URL, a full disk) must end in
            # "failed" with its reason on /readyz, not in a node that says "loading" forever.
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("edge node failed to start", extra={"error": self.error})
            if service is not None:
                await service.close()
            return
        self.service, self.state = service, "ready"
        self.metrics.ready.set(1)
        if self.events is not None:
            self.events.start()
        if self.topk is not None:
            self._sharing = asyncio.create_task(self._share_popularity(service, self.topk))
        log.info(
            "ready",
            extra={
                "version": artifacts.version,
                "tracks": len(artifacts.catalog),
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

    @staticmethod
    async def _connect(service: PlaylistService) -> list[str]:
        """Connect every Redis tier up front; the names of those that did not answer."""
        tiers = [
            tier.tier if isinstance(tier, WriteBehind) else tier for tier in service.cache.tiers
        ]
        redis_tiers = [tier for tier in tiers if isinstance(tier, RedisTier)]
        answered = await asyncio.gather(*(tier.connect() for tier in redis_tiers))
        return [tier.name for tier, ok in zip(redis_tiers, answered, strict=True) if not ok]

    def _assemble(self, artifacts: Artifacts) -> PlaylistService:
        s = self.settings
        params = RankParams(length=s.default_length, max_length=s.max_length)
        l1 = MemoryTier(s.l1_bytes, clock=self._clock, max_ttl=s.l1_max_ttl or None)
        cache = TieredCache(
            [l1, *self._remote_tiers()],
            clock=self._clock,
            on_error=self._tier_error,
            tracer=self.tracer,
            on_write=lambda tier, size: self.metrics.tier_written.labels(tier).inc(size),
        )
        compute = ComputePool(
            artifacts.generator(params),
            threads=s.compute_threads,
            queue_limit=s.compute_queue,
            window=s.batch_window_ms / 1000,
            batch_size=s.batch_size,
            retry_after=s.retry_after,
            nice=s.compute_nice,
            on_batch=self.metrics.batch_size.observe,
        )
        self.metrics.queue_depth.set_function(lambda: compute.in_flight)
        pseudonymizer = Pseudonymizer(user_hash_key(s), s.region, self._clock)
        users = UserExclusions(
            MemoryTier(16 * 1024 * 1024, clock=self._clock, name="users"),
            pseudonym=pseudonymizer.user,
            max_items=s.user_exclusions_max,
            clock=self._clock,
        )
        service = PlaylistService(
            artifacts,
            s,
            l1=l1,
            cache=cache,
            compute=compute,
            exclusions=users,
            metrics=self.metrics,
            clock=self._clock,
        )
        service.user_hash = pseudonymizer.user
        service.tracer = self.tracer
        if s.semantic:
            service.semantic = SemanticIndex(
                compute.generator.encoder.dim,
                capacity=s.semantic_capacity,
                threshold=s.semantic_threshold,
            )
        service.lease_tier = next(
            (t for t in cache.tiers if isinstance(t, RedisTier) and t.name == "l2"), None
        )
        if s.l2_url:
            self.topk = RegionalTopK(redis_client(s.l2_url, timeout=1.0), s.region)
        if s.l2_url:
            # In a cluster, a PUBLISH reaches subscribers on every node.
            client = redis_client(s.l2_url, timeout=5.0, health_check_interval=1.0)
            service.bus = InvalidationBus(
                client,
                channel=f"edge:{s.region}:invalidate",
                apply=service.apply,
                reset=service.reset,
            )
        return service

    async def _prewarm(self, service: PlaylistService, topk: RegionalTopK) -> None:
        s = self.settings
        try:
            async with asyncio.timeout(2.0):
                wanted = await topk.top(s.prewarm_top)
        except REDIS_FAILURES as exc:
            log.warning("region's popular prompts unavailable", extra={"error": repr(exc)})
            return
        done = await service.prewarm(wanted, s.prewarm_seconds)
        log.info("prewarmed", extra={"wanted": len(wanted), **done})

    async def _share_popularity(self, service: PlaylistService, topk: RegionalTopK) -> None:
        """Every interval, add this edge's counts to the region's (counts restart each time)."""
        while True:
            await asyncio.sleep(self.settings.popularity_interval)
            counted = service.popularity.drain(max(4 * self.settings.prewarm_top, 100))
            try:
                async with asyncio.timeout(2.0):
                    await topk.merge(counted)
            except REDIS_FAILURES as exc:
                log.warning("popular prompts not shared", extra={"error": repr(exc)})

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
                else DiskTier(target, size_limit=s.global_bytes, clock=self._clock)
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
            on_change=lambda state: self._breaker_moved(name, state, gauge),
        )
        timeout = s.remote_timeout_ms / 1000
        return RedisTier(
            redis_client(url, timeout=timeout),
            name=name,
            # L2 and the global store can share one Redis (or cluster) and stay apart.
            prefix="edge:" if name == "l2" else f"{name}:",
            timeout=timeout,
            breaker=breaker,
            clock=self._clock,
        )

    def _breaker_moved(self, tier: str, state: BreakerState, gauge: Gauge) -> None:
        gauge.set(_BREAKER_LEVEL[state])
        log.warning("circuit breaker moved", extra={"tier": tier, "state": str(state)})

    def _tier_error(self, tier: str, exc: TierUnavailable) -> None:
        self.metrics.cache_outcome(tier, "error")
        log.warning("cache tier unavailable", extra={"tier": tier, "error": str(exc)})

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        """(ready?, the /readyz document)."""
        doc: dict[str, object] = {"status": self.state}
        if self.error:
            doc["error"] = self.error
        service = self.service
        if service is not None:
            doc["version"] = service.version
            doc["tiers"] = {t.name: str(await t.state()) for t in service.cache.tiers}
            doc["compute"] = {
                "in_flight": service.compute.in_flight,
                "limit": service.compute.queue_limit,
                "state": "degraded" if service.compute.overloaded else "ok",
            }
        return service is not None, doc

    async def close(self) -> None:
        for task in (self._task, self._sharing):
            if task is not None:
                await cancel_and_wait(task)
        if self.topk is not None:
            await self.topk.client.aclose()
        if self.limiter is not None:
            await self.limiter.close()
        if self.events is not None:
            await self.events.close()
        if self.service is not None:
            await self.service.close()
