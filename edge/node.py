"""`EdgeNode`: what one process serves — settings, metrics, and the service once loaded.

Artifacts load in the background after startup, so /healthz answers at once and /readyz
says "loading" until the version is verified and warm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from opentelemetry import trace

from cache.redis_tier import RedisTier
from cache.tasks import cancel_and_wait
from cache.writebehind import WriteBehind
from edge import telemetry
from edge.auth import Authenticator, load_keys
from edge.cdn import CdnPurger
from edge.compute import run_lowered
from edge.errors import NotReady, VersionConflict
from edge.events import EventsPipeline
from edge.metrics import Metrics
from edge.ratelimit import RateLimiter
from edge.service import PlaylistService
from edge.settings import EdgeSettings
from edge.versions import WARMUP_PROMPTS, Versions
from edge.wiring import Wiring
from models import artifacts as model_artifacts
from models.artifacts import Artifacts
from regional.errors import StoreUnavailable
from regional.popular import RegionalTopK

log = logging.getLogger("edge.node")


class EdgeNode:
    """Owns the loaded service and reports readiness."""

    def __init__(
        self,
        settings: EdgeSettings,
        *,
        artifacts: Artifacts | None = None,
        clock: Callable[[], float] = time.time,
        tracer: trace.Tracer = telemetry.NO_TRACER,
        lean_path: bool = True,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.tracer = tracer
        """Spans per stage when traces are on (`edge.telemetry`)."""
        self.lean_path = lean_path
        """GET /v1/playlists may skip Litestar's routing (`edge.middleware.FastGet`)."""
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
        self.wiring = Wiring(settings, self.metrics, clock=clock, tracer=tracer)
        """Builds the services of this node's versions (`edge.wiring`)."""
        self.versions = Versions(settings, self.metrics)
        """The primary service once loaded, and a candidate version (`edge.versions`)."""
        self.metrics.queue_depth.set_function(
            lambda: self.service.compute.in_flight if self.service is not None else 0
        )
        self.metrics.compute_degraded.set_function(
            lambda: float(self.service is not None and self.service.compute.overloaded)
        )
        self.state = "loading"
        self.error = ""
        self._preloaded = artifacts
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.topk: RegionalTopK | None = None
        self._sharing: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self.events: EventsPipeline | None = None

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
            signal.SIGUSR1: self.versions.promote,
            signal.SIGUSR2: self.versions.rollback,
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
            node_id = uuid.uuid4().hex
            self.events = EventsPipeline.build(self.settings, self.metrics, node_id, self._clock)
            service, self.topk = self.wiring.primary(
                artifacts, node_id=node_id, events=self.events, on_miss=self.versions.shadow_miss
            )
            for tier in await self._connect(service):
                log.warning("cache tier not reachable at start", extra={"tier": tier})
            if service.bus is not None:
                service.bus.start()
                if not await service.bus.wait_subscribed(timeout=2.0):
                    log.warning("invalidation bus not subscribed yet; continuing without it")
            if self.topk is not None and self.settings.prewarm_top > 0:
                await self._prewarm(service, self.topk)
            if self.settings.warmup:
                await service.warm.warm_up(WARMUP_PROMPTS)
        except Exception as exc:  # noqa: BLE001 - the loading task's top: report, never hang
            # Whatever stops the load (bad artifacts, a bad tier URL, a full disk) must end in
            # "failed" with its reason on /readyz, not in a node that says "loading" forever.
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.error("edge node failed to start", extra={"error": self.error})
            if service is not None:
                await service.close()
            return
        self.versions.primary, self.state = service, "ready"
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

    async def _prewarm(self, service: PlaylistService, topk: RegionalTopK) -> None:
        s = self.settings
        try:
            async with asyncio.timeout(2.0):
                wanted = await topk.top(s.prewarm_top)
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("region's popular prompts unavailable", extra={"error": repr(exc)})
            return
        done = await service.warm.prewarm(wanted, s.prewarm_seconds)
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

    # -- a second artifact version: load, split, promote, roll back (`edge.versions`) -----

    @property
    def service(self) -> PlaylistService | None:
        """The primary service, once loaded."""
        return self.versions.primary

    def route(self, subject: str) -> PlaylistService:
        """The service that answers for `subject` (a user token, else a prompt key)."""
        return self.versions.route(self.require(), subject)

    def load_candidate(self, folder: Path) -> None:
        """Start loading `folder` as the candidate version, in the background."""
        versions = self.versions
        versions.load_candidate(
            folder,
            self.require(),
            lambda artifacts, shared: self.wiring.candidate(
                artifacts, shared, versions.shadow_miss
            ),
        )

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
        for task in (self._task, self._sharing, self._refreshing, *self.versions.tasks):
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
