"""`EdgeNode`: what one process serves — settings, metrics, and the service once loaded.

Artifacts load in the background after startup, so /healthz answers at once and /readyz
says "loading" until the version is verified and warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import xxhash
from opentelemetry import trace
from prometheus_client import Gauge

from cache.base import Tier
from cache.breaker import BreakerState, CircuitBreaker
from cache.disk import DiskTier
from cache.errors import TierUnavailable
from cache.memory import MemoryTier
from cache.redis_tier import RedisTier
from cache.semantic import SemanticIndex
from cache.tasks import cancel_and_wait
from cache.tiered import TieredCache
from cache.writebehind import WriteBehind
from edge import shadow, telemetry
from edge.auth import Authenticator, load_keys
from edge.cdn import CdnPurger
from edge.compute import ComputePool, run_lowered
from edge.errors import NotReady, Overloaded, VersionConflict
from edge.events import EventsPipeline, user_hash_key
from edge.metrics import Metrics
from edge.personalize import UserExclusions
from edge.ratelimit import RateLimiter
from edge.semantic import SemanticCache
from edge.service import PlaylistService
from edge.settings import EdgeSettings
from edge.shadow import Agreement
from models import artifacts as model_artifacts
from models.artifacts import Artifacts, Manifest
from models.errors import ModelError
from models.intent import Intent
from models.ranker import Playlist, RankParams
from models.semantic import conflicts
from regional.connections import is_redis_url, redis_client
from regional.errors import StoreUnavailable
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
        self.tracer: trace.Tracer = telemetry.NO_TRACER
        """Set by the app when traces are on (`edge.telemetry`)."""
        keys = settings.api_keys_file
        self.auth = Authenticator(load_keys(Path(keys)) if keys else None)
        self.limiter = RateLimiter(settings) if settings.rate_limit else None
        targets = CdnPurger.parse(settings.cdn_purge_urls)
        self.cdn = (
            CdnPurger(targets, self.metrics.cdn_purges, retries=settings.cdn_purge_retries)
            if targets
            else None
        )
        """The shared caches in front of the node that purges are sent to."""
        self.service: PlaylistService | None = None
        self.versions = Versions()
        self._shadows: set[asyncio.Task[None]] = set()
        self._rng = random.Random()
        """Picks the misses shadowed (the share is what matters, not which ones)."""
        self.state = "loading"
        self.error = ""
        self._preloaded = artifacts
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.bench_bodies: dict[bytes, bytes] = {}
        self.topk: RegionalTopK | None = None
        self._sharing: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self.events: EventsPipeline | None = None
        self.lean_path = True

    def require(self) -> PlaylistService:
        """The service, or NotReady (503 + Retry-After) while loading or after a failed load."""
        if self.service is None:
            raise NotReady(
                f"edge node is {self.state}{': ' + self.error if self.error else ''}",
                self.settings.retry_after,
            )
        return self.service

    def start(self, *, signals: bool = False) -> None:
        if self.auth.open:
            log.warning("no API keys configured (EDGE_API_KEYS_FILE): every client is served")
        self._task = asyncio.create_task(self._load())
        if signals:
            self._listen_for_signals()

    def _listen_for_signals(self) -> None:
        """SIGHUP loads EDGE_CANDIDATE_ARTIFACTS as the candidate version, SIGUSR1 promotes
        it, SIGUSR2 rolls back (send them to each worker process)."""
        loop = asyncio.get_running_loop()
        steps = {
            signal.SIGHUP: lambda: self.load_candidate(Path(self.settings.candidate_artifacts)),
            signal.SIGUSR1: self.promote,
            signal.SIGUSR2: self.rollback,
        }
        for number, step in steps.items():
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(number, self._signalled, signal.Signals(number).name, step)

    def _signalled(self, name: str, step: Callable[[], None]) -> None:
        try:
            step()
        except (VersionConflict, NotReady, OSError) as exc:
            log.warning("version signal refused", extra={"signal": name, "error": str(exc)})

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
            service.on_miss = self._shadow
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
        if self.settings.refresh_ahead_top > 0:
            self._refreshing = asyncio.create_task(self._refresh_ahead())
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

    def _assemble(
        self, artifacts: Artifacts, shared: PlaylistService | None = None
    ) -> PlaylistService:
        """A service over `artifacts`; a candidate version shares the primary's (`shared`)
        cache tiers, listener state and region connections, and has its own compute."""
        s = self.settings
        params = RankParams(length=s.default_length, max_length=s.max_length)
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
        if shared is not None:
            l1, cache, users = shared.l1, shared.cache, shared.exclusions
            pseudonym = shared.user_hash
        else:
            self.metrics.queue_depth.set_function(
                lambda: self.service.compute.in_flight if self.service is not None else 0
            )
            self.metrics.compute_degraded.set_function(
                lambda: float(self.service is not None and self.service.compute.overloaded)
            )
            l1 = MemoryTier(s.l1_bytes, clock=self._clock, max_ttl=s.l1_max_ttl or None)
            cache = TieredCache(
                [l1, *self._remote_tiers()],
                clock=self._clock,
                on_error=self._tier_error,
                tracer=None if self.tracer is telemetry.NO_TRACER else self.tracer,
                on_write=lambda tier, size: self.metrics.tier_written.labels(tier).inc(size),
            )
            pseudonym = Pseudonymizer(user_hash_key(s), s.region, self._clock).user
            users = UserExclusions(
                MemoryTier(16 * 1024 * 1024, clock=self._clock, name="users"),
                pseudonym=pseudonym,
                max_items=s.user_exclusions_max,
                clock=self._clock,
            )
        semantic = None
        if s.semantic:
            semantic = SemanticIndex(
                compute.generator.encoder.dim,
                capacity=s.semantic_capacity,
                threshold=s.semantic_threshold,
                near_margin=s.semantic_near_margin,
                veto=conflicts,
            )
            SemanticCache.thresholds_from(semantic, artifacts.semantic)
            for bucket, threshold in {"": semantic.threshold, **semantic.thresholds}.items():
                self.metrics.semantic_threshold.labels(bucket or "default").set(threshold)
        service = PlaylistService(
            artifacts,
            s,
            l1=l1,
            cache=cache,
            compute=compute,
            exclusions=users,
            metrics=self.metrics,
            clock=self._clock,
            semantic=semantic,
        )
        service.user_hash = pseudonym
        service.tracer = self.tracer
        if shared is not None:
            for name in ("sessions", "labels", "lease_tier"):
                setattr(service, name, getattr(shared, name))
            service.variant = "candidate"
            return service
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
        except (StoreUnavailable, TimeoutError) as exc:
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
            except (StoreUnavailable, TimeoutError) as exc:
                log.warning("popular prompts not shared", extra={"error": repr(exc)})

    async def _refresh_ahead(self) -> None:
        """Several times per refresh margin, refresh the served version's due entries."""
        s = self.settings
        margin = s.ttl * s.shared_max_age * (1.0 - s.refresh_ahead)
        interval = min(1.0, max(0.05, margin / 4))
        while True:
            await asyncio.sleep(interval)
            if self.service is not None:
                self.service.refresh_ahead()

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

    # -- a second artifact version: load, split, promote, roll back -----------------------

    def route(self, subject: str) -> PlaylistService:
        """The service that answers for `subject` (a user token, else a prompt key)."""
        primary = self.require()
        candidate = self.versions.candidate
        if candidate is not None and self.versions.assigned(subject):
            return candidate
        return primary

    def load_candidate(self, folder: Path) -> None:
        """Start loading `folder` as the candidate version, in the background."""
        versions = self.versions
        if versions.state == "loading":
            raise VersionConflict("a candidate version is loading already")
        if versions.candidate is not None:
            raise VersionConflict("a candidate version is loaded: promote or unload it first")
        primary = self.require()
        manifest = model_artifacts.read_manifest(folder)  # ArtifactError: not a version
        needed = _footprint(primary.artifacts.manifest) + _footprint(manifest)
        bound = self.settings.versions_memory_mb * 1024 * 1024
        if needed > bound:
            raise VersionConflict(
                f"two versions would need about {needed >> 20} MB, over EDGE_VERSIONS_MEMORY_MB"
                f" ({self.settings.versions_memory_mb} MB)"
            )
        versions.state, versions.error = "loading", ""
        versions.task = asyncio.create_task(self._load_candidate(folder, primary))

    async def _load_candidate(self, folder: Path, primary: PlaylistService) -> None:
        versions = self.versions
        started = time.perf_counter()
        candidate = None
        try:
            artifacts = await run_lowered(
                self.settings.compute_nice,
                model_artifacts.load,
                folder,
                encoder_threads=self.settings.encoder_threads,
                check=True,  # checksums, whatever verify_artifacts says
            )
            if artifacts.version == primary.version:
                raise VersionConflict(f"{artifacts.version} is the version already served")
            candidate = self._assemble(artifacts, shared=primary)
            await candidate.smoke_test(WARMUP_PROMPTS)
            wanted = [(c.key, c.spec) for c in primary.popularity.top(self.settings.prewarm_top)]
            if wanted:  # the primary's popular prompts, answered by this version before it serves
                await candidate.prewarm(wanted, self.settings.prewarm_seconds)
        except Exception as exc:  # noqa: BLE001 - the loading task's top: report, never hang
            versions.state, versions.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("candidate version failed to load", extra={"error": versions.error})
            if candidate is not None:
                await candidate.close(tiers=False)
            return
        versions.candidate, versions.state = candidate, "ready"
        # The configured share and shadow ratio apply from now (the admin endpoint changes them).
        versions.percent = self.settings.split_percent
        versions.experiment = self.settings.split_experiment
        versions.shadow = self.settings.shadow_ratio
        log.info(
            "candidate version ready",
            extra={
                "version": candidate.version,
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

    def promote(self) -> None:
        """The candidate serves everyone; the old primary stays loaded for a rollback."""
        if self.versions.candidate is None:
            raise VersionConflict("no candidate version to promote")
        self._swap()
        self.versions.previous = True
        log.warning("version promoted", extra={"version": self.require().version})

    def rollback(self) -> None:
        """Undo the last step: a split goes back to 0 %; after a promotion, the previous
        primary (kept loaded since) serves again."""
        versions = self.versions
        if versions.percent > 0:
            versions.percent = 0.0
        elif versions.previous:
            self._swap()
            versions.previous = False
        else:
            raise VersionConflict("nothing to roll back: no split and no promotion")
        log.warning("rolled back", extra={"version": self.require().version})

    def _swap(self) -> None:
        """Primary and candidate trade places, atomically for requests: each holds the
        service it started with until it is answered."""
        old, versions = self.require(), self.versions
        assert versions.candidate is not None
        self.service, versions.candidate = versions.candidate, old
        self.service.variant, old.variant = "primary", "candidate"
        self.service.on_miss, old.on_miss = self._shadow, None
        versions.percent = 0.0

    def _shadow(self, intent: Intent, n: int, served: Playlist) -> None:
        """Maybe have the candidate answer this miss too, off the request path."""
        versions = self.versions
        candidate = versions.candidate
        if candidate is None or versions.shadow <= 0 or self._rng.random() >= versions.shadow:
            return
        task = asyncio.create_task(self._compare(candidate, intent, n, served))
        self._shadows.add(task)
        task.add_done_callback(self._shadows.discard)

    async def _compare(
        self, candidate: PlaylistService, intent: Intent, n: int, served: Playlist
    ) -> None:
        try:
            with candidate.compute.admit():
                other, _ = await candidate.compute.generate(intent, n)
        except (Overloaded, ModelError, TimeoutError):
            return  # the candidate is busy or failing: no comparison this time
        slot_kind = shadow.kind(intent)
        agreed = shadow.overlap(served.ids, other.ids)
        correlation = shadow.rank_correlation(served.ids, other.ids)
        self.versions.agreement.setdefault(slot_kind, Agreement()).add(agreed, correlation)
        self.metrics.shadow_overlap.labels(slot_kind).observe(agreed)
        self.metrics.shadow_correlation.labels(slot_kind).observe(correlation)

    async def unload(self) -> None:
        """Drop the candidate version once requests it is answering are done."""
        versions = self.versions
        candidate, versions.candidate, versions.percent = versions.candidate, None, 0.0
        versions.state, versions.previous = "none", False
        if candidate is not None:
            for _ in range(200):  # at most 10 s for in-flight misses
                if candidate.compute.in_flight == 0:
                    break
                await asyncio.sleep(0.05)
            await candidate.close(tiers=False)

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
            if service.semantic is not None and service.semantic.verifier is not None:
                doc["semantic"] = service.semantic.verifier.report()
        return service is not None, doc

    async def close(self) -> None:
        for task in (self._task, self._sharing, self._refreshing, *self._shadows):
            if task is not None:
                await cancel_and_wait(task)
        if self.topk is not None:
            await self.topk.client.aclose()
        if self.limiter is not None:
            await self.limiter.close()
        if self.cdn is not None:
            await self.cdn.close()
        if self.events is not None:
            await self.events.close()
        if self.versions.candidate is not None:
            await self.versions.candidate.close(tiers=False)
        if self.service is not None:
            await self.service.close()


@dataclass
class Versions:
    """The candidate artifact version and the share of traffic it takes."""

    candidate: PlaylistService | None = None
    state: str = "none"
    """none, loading, ready (the candidate can take traffic) or failed."""
    error: str = ""
    experiment: str = "rollout"
    percent: float = 0.0
    """Share of subjects (listeners, else prompts) the candidate answers, 0-100."""
    shadow: float = 0.0
    """Share of the primary's misses the candidate also answers, to compare (0-1)."""
    agreement: dict[str, Agreement] = field(default_factory=dict)
    """Shadow comparisons so far, by slot kind."""
    previous: bool = False
    """The candidate slot holds the version served before the last promotion."""
    task: asyncio.Task[None] | None = None

    def assigned(self, subject: str) -> bool:
        """Whether `subject` is in the candidate's share: a hash of (experiment, subject)
        against the percentage, so an assignment is stable while the share grows."""
        if self.percent <= 0:
            return False
        bucket = xxhash.xxh3_64_intdigest(f"{self.experiment}\x00{subject}".encode()) % 10_000
        return bucket < self.percent * 100

    def describe(self, primary: PlaylistService | None) -> dict[str, object]:
        candidate = self.candidate
        return {
            "primary": primary.version if primary is not None else None,
            "candidate": candidate.version if candidate is not None else None,
            "state": self.state,
            "error": self.error or None,
            "experiment": self.experiment,
            "percent": self.percent,
            "shadow": self.shadow,
            "agreement": {kind: a.report() for kind, a in sorted(self.agreement.items())},
        }


def _footprint(manifest: Manifest) -> int:
    """Bytes an artifact version takes in memory, about: the size of its files."""
    return sum(entry.bytes for entry in manifest.files.values())
