"""`PlaylistService`: the request path from a validated request to response bytes.

    intent → key → TieredCache → (miss) single-flight compute → store → personalise → answer

Freshness decides what a cached entry is good for: fresh entries are served as hits; stale
ones inside the revalidation window are served at once while one background computation
replaces them; older ones are recomputed, and served only if that fails (stale-if-error).
When the encoder or index fails or is too slow, the precomputed fallback lists answer,
flagged degraded, kept briefly in L1 only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable

import msgspec
from cachetools import LRUCache
from opentelemetry import trace

from cache.base import Entry
from cache.flight import SingleFlight
from cache.memory import MemoryTier
from cache.popularity import Popularity
from cache.semantic import SemanticIndex
from cache.tasks import cancel_and_wait
from cache.tiered import TieredCache
from edge import answers, telemetry
from edge.answers import Answer
from edge.compute import ComputePool
from edge.errors import BadRequest, Overloaded
from edge.metrics import Metrics
from edge.miss import ComputeFailed, MissPath
from edge.personalize import Personalizer, UserExclusions
from edge.query import canonical_query, parse_query
from edge.refresh import PromptSpec, RefreshAhead
from edge.region import Region, RegionLease
from edge.schemas import PlaylistRequest
from edge.settings import EdgeSettings
from edge.telemetry import span
from edge.warm import Warmer
from models.artifacts import Artifacts
from models.errors import IntentError
from models.intent import Intent
from models.ranker import Playlist

log = logging.getLogger("edge.service")
Clock = Callable[[], float]
OnMiss = Callable[["PlaylistService", Intent, int, Playlist], None]


class PlaylistService:
    """Answers playlist requests for one loaded artifact version."""

    def __init__(
        self,
        artifacts: Artifacts,
        settings: EdgeSettings,
        *,
        l1: MemoryTier,
        cache: TieredCache,
        compute: ComputePool,
        exclusions: UserExclusions,
        metrics: Metrics,
        clock: Clock = time.time,
        semantic: SemanticIndex | None = None,
        region: Region | None = None,
        tracer: trace.Tracer = telemetry.NO_TRACER,
        on_miss: OnMiss | None = None,
        variant: str = "primary",
    ) -> None:
        region = region or Region()
        self.region = region
        self.exclusions = exclusions
        self.artifacts = artifacts
        self.version = artifacts.version
        self.settings = settings
        self.l1 = l1
        self.cache = cache
        self.compute = compute
        self.metrics = metrics
        self._clock = clock
        self.bus = region.bus
        """Tells the region's edges of purges and replaced entries (None: no L2)."""
        self.tracer = tracer
        """Spans per stage of the full path (see `edge.telemetry`)."""
        self.variant = variant
        """primary, or candidate while another version serves most traffic."""
        self.popularity = Popularity()
        self.headers = answers.HeaderPolicy.of(settings)
        self.refresh = RefreshAhead(
            top=settings.refresh_ahead_top,
            window=max(1.0, settings.ttl * settings.shared_max_age),
            clock=clock,
        )
        """Keys answered lately, whose entries are refreshed before shared copies run out."""
        self.lease = RegionLease(
            region.lease_tier,
            l1,
            metrics,
            node_id=region.node_id,
            seconds=settings.lease_seconds,
            clock=clock,
        )
        self.personal = Personalizer(
            artifacts,
            settings,
            exclusions=exclusions,
            headers=self.headers,
            fallback=compute.generator.fallback,
            sessions=region.sessions,
            user_hash=region.user_hash,
        )
        self.warm = Warmer(self, region.labels)
        self.misses = MissPath(
            artifacts,
            settings,
            cache=cache,
            compute=compute,
            metrics=metrics,
            lease=self.lease,
            clock=clock,
            semantic=semantic,
            bus=region.bus,
            tracer=tracer,
            on_miss=None if on_miss is None else functools.partial(on_miss, self),
        )
        self.semantic = self.misses.semantic
        """Semantic hits, near misses and their verification (None: exact keys only)."""
        self._flights: SingleFlight[tuple[Entry, str]] = SingleFlight()
        self._background: set[asyncio.Task[tuple[Entry, str]]] = set()
        # Raw query string → cache key, so repeated URLs skip parsing on the hit path.
        self._keys: LRUCache[bytes, str] = LRUCache(maxsize=settings.key_memo)
        # Raw query string → its canonical form, for the canonical redirect.
        self._canonical: LRUCache[bytes, bytes] = LRUCache(maxsize=settings.key_memo)
        self._genres = artifacts.parser.genres

    # -- request forms -------------------------------------------------------------------

    def parse_get(self, raw_query: bytes) -> PlaylistRequest:
        s = self.settings
        return parse_query(
            raw_query, genres=self._genres, default_length=s.default_length, max_length=s.max_length
        )

    def intent(self, request: PlaylistRequest) -> tuple[Intent, str]:
        if not 1 <= request.n <= self.settings.max_length:
            raise BadRequest(f"n must be from 1 to {self.settings.max_length}, got {request.n}")
        intent = self.artifacts.parser.parse(request.prompt, request.slots)
        return intent, intent.key(self.version, request.n)

    def redirect(self, raw_query: bytes) -> Answer | None:
        """With canonical redirects on, a 308 to the canonical URL of a query string that is
        not canonical (BadRequest if it is not valid); else None."""
        if not self.settings.canonical_redirect:
            return None
        canonical = self._canonical.get(raw_query)
        if canonical is None:
            self.parse_get(raw_query)  # only a valid query has a canonical form
            canonical = canonical_query(raw_query, default_length=self.settings.default_length)
            self._canonical[raw_query] = canonical
        if canonical == raw_query:
            return None
        location = "/v1/playlists" + ("?" + canonical.decode() if canonical else "")
        headers = {
            "location": location,
            # The mapping never changes: shared caches may keep the redirect long.
            "cache-control": f"public, max-age={int(self.settings.ttl)}",
        }
        if self.headers.vary_key:
            headers["vary"] = "X-API-Key"
        self.metrics.rejections.labels("canonical-redirect").inc()
        return Answer(308, b"", headers)

    # -- the lean hit path ---------------------------------------------------------------

    def fresh_hit(self, raw_query: bytes, if_none_match: str | None) -> Answer | None:
        """A fresh L1 hit for a GET query string, without awaiting anything; else None.

        Only keys already seen by the full path are known here, so validation is the
        same: a query that was never parsed successfully is never answered here.
        """
        start = time.perf_counter()
        key = self._keys.get(raw_query)
        if key is None:
            return None
        entry = self.l1.peek(key)
        if entry is None:
            return None
        now = self._clock()
        if not entry.is_fresh(now) or not entry.shared:
            return None
        self.metrics.cache_outcome("l1", "hit")
        self.popularity.hit(key)
        self.refresh.hit(key)
        lookup_ms = (time.perf_counter() - start) * 1000
        return self._respond(entry, "HIT-L1", now, if_none_match, {"l1": lookup_ms}, start)

    # -- the full path -------------------------------------------------------------------

    def prepare_get(self, raw_query: bytes) -> tuple[PlaylistRequest, Intent, str]:
        """The request, intent and key of a GET query string (BadRequest or IntentError if
        it is not valid); the key is remembered for the lean hit path."""
        request = self.parse_get(raw_query)
        intent, key = self.intent(request)
        self._keys[raw_query] = key
        return request, intent, key

    async def answer(
        self, request: PlaylistRequest, intent: Intent, key: str, if_none_match: str | None
    ) -> Answer:
        start = time.perf_counter()
        with span(self.tracer, "cache"):
            lookup = await self.cache.get(key)
        timings = {"l1": (time.perf_counter() - start) * 1000}
        now = self._clock()
        if lookup is not None and lookup.entry.is_fresh(now):
            entry, label = lookup.entry, _hit_label(lookup.entry, lookup.tier)
            self.metrics.cache_outcome(lookup.tier, "hit" if entry.shared else "fallback")
        elif lookup is not None and now < lookup.entry.revalidate_until:
            entry, label = lookup.entry, "STALE"
            self.metrics.cache_outcome(lookup.tier, "stale")
            self._revalidate(key, intent, request.n)
        else:
            stale = lookup.entry if lookup is not None else None
            entry, label = await self._miss(key, intent, request.n, stale, timings)
        if entry.shared:
            spec = msgspec.json.encode(PromptSpec(intent.text, intent.slots, request.n))
            self.popularity.hit(key, spec)
            self.refresh.hit(key, spec)
        if self.tracer is not telemetry.NO_TRACER:
            trace.get_current_span().set_attributes(
                {"edge.tier": label, "edge.version": self.version, "edge.variant": self.variant}
            )
        if request.user is None:
            return self._respond(entry, label, now, if_none_match, timings, start)
        with span(self.tracer, "personalize"):  # never cached shared
            body, headers = await self.personal.answer(
                entry, request.user, intent, request.n, label=label, now=now, timings=timings,
                start=start,
            )  # fmt: skip
        return self._sent(Answer(200, body, headers))

    async def miss(self, key: str, intent: Intent, n: int) -> Entry:
        """`key`'s entry computed now (or by the region, or a semantic neighbour's)."""
        entry, _label = await self._miss(key, intent, n, None, {})
        return entry

    async def fresh(self, key: str) -> bool:
        """Whether some tier holds a fresh entry for `key` (a lower tier's is promoted)."""
        lookup = await self.cache.get(key)
        return lookup is not None and lookup.entry.is_fresh(self._clock())

    async def _miss(
        self, key: str, intent: Intent, n: int, stale: Entry | None, timings: dict[str, float]
    ) -> tuple[Entry, str]:
        replacing = stale is not None
        task, leader = self._flights.start(
            key, lambda: self.misses.produce(key, intent, n, timings, replacing=replacing)
        )
        try:
            entry, label = await asyncio.shield(task)
        except Overloaded:
            if stale is None:
                self.metrics.rejections.labels("overload").inc()
                raise
            self.metrics.cache_outcome("compute", "stale")
            return stale, "STALE"
        except ComputeFailed:
            if stale is not None:
                self.metrics.cache_outcome("compute", "stale")
                return stale, "STALE"
            return await self.misses.fallback(key, intent, n), "FALLBACK"
        if label == "SEMANTIC":
            self.metrics.cache_outcome("semantic", "hit" if leader else "coalesced")
        elif label == "MISS":
            self.metrics.cache_outcome("compute", "miss" if leader else "coalesced")
        return entry, label

    def _revalidate(self, key: str, intent: Intent, n: int, seen: Entry | None = None) -> None:
        """Replace `key`'s entry in the background; `seen`: ahead of its expiry, unless
        another edge of the region has already put a younger one in L2."""
        if key in self._flights:
            return
        if self.compute.overloaded:
            self.metrics.rejections.labels("revalidate-overload").inc()
            return
        outcome = "revalidated" if seen is None else "refreshed"

        async def replace() -> tuple[Entry, str]:
            if seen is not None:
                younger = await self.lease.younger(key, seen, self.headers.refresh_due)
                if younger is not None:
                    return younger, "HIT-L2"
            return await self.misses.produce(key, intent, n, {}, replacing=True)

        task, _ = self._flights.start(key, replace)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self.metrics.cache_outcome("compute", outcome)

    def refresh_ahead(self) -> int:
        """Start refreshing the entries of keys answered lately that are due (older than
        their refresh point, still fresh): shared caches then get a young answer when their
        copies run out. How many refreshes were started."""
        now, started = self._clock(), 0
        for key, spec in self.refresh.candidates(now):
            entry = self.l1.peek(key)
            if entry is None or not entry.shared or not entry.is_fresh(now):
                continue
            if now < self.headers.refresh_due(entry) or key in self._flights:
                continue
            parsed = self.spec_intent(spec)
            if parsed is None or parsed[2] != key:  # unreadable, or another version's key
                continue
            wanted, intent, _same = parsed
            self._revalidate(key, intent, wanted.n, seen=entry)
            started += 1
        return started

    def spec_intent(self, raw: bytes) -> tuple[PromptSpec, Intent, str] | None:
        """A recorded prompt spec, its intent and key under this version; None if the spec
        no longer reads or parses."""
        try:
            spec = msgspec.json.decode(raw, type=PromptSpec)
            request = PlaylistRequest(prompt=spec.prompt, slots=spec.slots, n=spec.n)
            intent, key = self.intent(request)
        except (msgspec.DecodeError, msgspec.ValidationError, IntentError, BadRequest):
            return None
        return spec, intent, key

    # -- responses -----------------------------------------------------------------------

    def _respond(
        self,
        entry: Entry,
        label: str,
        now: float,
        if_none_match: str | None,
        timings: dict[str, float],
        start: float,
    ) -> Answer:
        age = int(entry.age(now))
        timings["total"] = (time.perf_counter() - start) * 1000
        headers = self.headers.headers(entry, label=label, age=age, timings=timings)
        if answers.etag_matches(if_none_match, entry.etag):
            return self._sent(Answer(304, b"", headers))
        return self._sent(Answer(200, entry.body, headers))

    def _sent(self, answer: Answer) -> Answer:
        answer.headers["x-variant"] = self.variant
        self.metrics.answered(self.variant, self.version)
        return answer

    # -- invalidation ----------------------------------------------------------------------

    async def purge(
        self, keys: tuple[str, ...], tags: tuple[str, ...], *, soft: bool = False
    ) -> dict[str, object]:
        """Drop keys and tagged entries from every tier here (or, `soft`, mark them stale
        so they are served while revalidating), then tell the region's edges, which drop
        their L1 copies and so read the softened entries from L2."""
        if soft:
            dropped = await self.cache.soften(keys, tags)
        else:
            dropped = await self.cache.purge(keys, tags)
        published = await self.bus.publish(keys, tags) if self.bus is not None else False
        self.metrics.purges.inc()
        log.info(
            "purged",
            extra={"keys": len(keys), "tags": list(tags), "dropped": dropped, "soft": soft},
        )
        return {"softened" if soft else "dropped": dropped, "published": published}

    async def close(self, *, tiers: bool = True) -> None:
        """Stop this service; `tiers=False` leaves the cache tiers open (a candidate version
        shares them with the primary)."""
        if self.bus is not None:
            await self.bus.close()
        await asyncio.gather(*(cancel_and_wait(task) for task in self._background))
        await self.misses.close()
        self.compute.close()
        if tiers:
            for tier in self.cache.tiers:
                await tier.close()


def _hit_label(entry: Entry, tier: str) -> str:
    return f"HIT-{tier.upper()}" if entry.shared else "FALLBACK"
