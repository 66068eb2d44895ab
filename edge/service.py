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
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import msgspec
from cachetools import LRUCache
from opentelemetry import trace

from cache.base import Entry
from cache.errors import TierUnavailable
from cache.flight import SingleFlight
from cache.memory import MemoryTier
from cache.policy import FreshnessPolicy
from cache.popularity import Popularity
from cache.redis_tier import RedisTier
from cache.semantic import SemanticIndex, SemanticMatch
from cache.tasks import cancel_and_wait
from cache.tiered import TieredCache
from edge import answers, telemetry
from edge.compute import ComputePool
from edge.errors import BadRequest, EdgeError, Overloaded
from edge.metrics import Metrics
from edge.personalize import UserExclusions
from edge.query import canonical_query, parse_query
from edge.refresh import RefreshAhead
from edge.schemas import PlaylistRequest
from edge.semantic import SemanticCache, Verifier
from edge.settings import EdgeSettings
from models.artifacts import Artifacts
from models.errors import IntentError, ModelError
from models.generator import Timings
from models.intent import Intent, Slots
from models.ranker import Playlist, fingerprint
from regional.consumers import LabelStore, SessionStore
from regional.errors import StoreUnavailable
from regional.invalidation import Invalidation, InvalidationBus

log = logging.getLogger("edge.service")
_NO_SPAN = nullcontext()


class PromptSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a warmer needs to rebuild an answer: the masked prompt, its slots, the length."""

    prompt: str
    slots: Slots
    n: int


Clock = Callable[[], float]


class Answer(msgspec.Struct):
    """What a handler sends: status, body bytes and headers."""

    status: int
    body: bytes
    headers: dict[str, str]


class _ComputeFailed(EdgeError):
    """The miss path failed or timed out; the caller serves stale or the fallback (it never
    reaches a response)."""


Rows = tuple[int, ...]


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
    ) -> None:
        self.artifacts = artifacts
        self.semantic = (
            None
            if semantic is None
            else SemanticCache(
                semantic,
                Verifier(
                    semantic,
                    artifacts.catalog,
                    metrics,
                    recompute=self._recompute,
                    replace=self._replace,
                    idle=lambda: compute.in_flight == 0,
                    rate=settings.semantic_verify_rate,
                    seed=settings.seed,
                )
                if settings.semantic_verify_rate > 0
                else None,
            )
        )
        """Semantic hits, near misses and their verification (None: exact keys only)."""
        self._verifying: asyncio.Task[None] | None = None
        # Regional parts, attached by the node when configured (the bus calls back into
        # this service, so it is made after it).
        self.bus: InvalidationBus | None = None
        self.on_miss: Callable[[Intent, int, Playlist], None] | None = None
        """Told of each playlist computed for a miss (the node's shadow comparisons)."""
        self.variant = "primary"
        """primary, or candidate while another version serves most traffic."""
        self.tracer: trace.Tracer = telemetry.NO_TRACER
        """Spans per stage of the full path (see `edge.telemetry`)."""
        self.lease_tier: RedisTier | None = None
        self.popularity = Popularity()
        self.node_id = uuid.uuid4().hex
        self.sessions: SessionStore | None = None
        """The region's session state (set by the node when events are on)."""
        self.user_hash: Callable[[str], str] = exclusions.key
        """The keyed pseudonym of a user token (set by the node to the region's)."""
        self.labels: LabelStore | None = None
        """The region's prompt-quality labels (prewarm leaves mostly rejected prompts out)."""
        self.version = artifacts.version
        self.settings = settings
        self.l1 = l1
        self.cache = cache
        self.compute = compute
        self.exclusions = exclusions
        self.metrics = metrics
        self._clock = clock
        self._policy = FreshnessPolicy(
            fresh=settings.ttl,
            revalidate=settings.stale_while_revalidate,
            stale_if_error=settings.stale_if_error,
            jitter=settings.ttl_jitter,
        )
        self._policy.rng.seed(settings.seed)
        self.headers = answers.HeaderPolicy(
            revalidate=settings.stale_while_revalidate,
            stale_if_error=settings.stale_if_error,
            fallback_ttl=settings.fallback_ttl,
            private_max_age=settings.private_max_age,
            shared_share=settings.shared_max_age,
            refresh_ahead=settings.refresh_ahead,
            vary_key=bool(settings.api_keys_file),
        )
        self.refresh = RefreshAhead(
            top=settings.refresh_ahead_top,
            window=max(1.0, settings.ttl * settings.shared_max_age),
            clock=clock,
        )
        """Keys answered lately, whose entries are refreshed before shared copies run out."""
        self._flights: SingleFlight[tuple[Entry, str]] = SingleFlight()
        self._background: set[asyncio.Task[tuple[Entry, str]]] = set()
        # Raw query string → cache key, so repeated URLs skip parsing on the hit path.
        self._keys: LRUCache[bytes, str] = LRUCache(maxsize=settings.key_memo)
        # Raw query string → its canonical form, for the canonical redirect.
        self._canonical: LRUCache[bytes, bytes] = LRUCache(maxsize=settings.key_memo)
        self._genres = artifacts.parser.genres

    def _span(self, name: str) -> AbstractContextManager[object]:
        """A span under the current one; with tracing off, nothing at all (even OTel's no-op
        spans cost ~10 µs each in contextvars work, several times per miss)."""
        if self.tracer is telemetry.NO_TRACER:
            return _NO_SPAN
        return self.tracer.start_as_current_span(name)

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

    async def answer_get(self, raw_query: bytes, if_none_match: str | None) -> Answer:
        return await self.answer(*self.prepare_get(raw_query), if_none_match)

    async def answer(
        self, request: PlaylistRequest, intent: Intent, key: str, if_none_match: str | None
    ) -> Answer:
        start = time.perf_counter()
        with self._span("cache"):
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
        if request.user is not None:
            with self._span("personalize"):
                return await self._personal(entry, label, request, intent, now, timings, start)
        return self._respond(entry, label, now, if_none_match, timings, start)

    async def _miss(
        self, key: str, intent: Intent, n: int, stale: Entry | None, timings: dict[str, float]
    ) -> tuple[Entry, str]:
        replacing = stale is not None
        task, leader = self._flights.start(
            key, lambda: self._produce(key, intent, n, timings, replacing=replacing)
        )
        try:
            entry, label = await asyncio.shield(task)
        except Overloaded:
            if stale is None:
                self.metrics.rejections.labels("overload").inc()
                raise
            self.metrics.cache_outcome("compute", "stale")
            return stale, "STALE"
        except _ComputeFailed:
            if stale is not None:
                self.metrics.cache_outcome("compute", "stale")
                return stale, "STALE"
            return await self._fallback(key, intent, n), "FALLBACK"
        if label == "SEMANTIC":
            self.metrics.cache_outcome("semantic", "hit" if leader else "coalesced")
        elif label == "MISS":
            self.metrics.cache_outcome("compute", "miss" if leader else "coalesced")
        return entry, label

    async def _produce(
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
            leased = None if replacing else await self._lease(key)
            try:
                if leased is False:
                    shared = await self._wait_for_region(key)
                    if shared is not None:
                        return shared, "HIT-L2"
                return await self._compute(key, intent, n, timings, replacing=replacing)
            finally:
                if leased:
                    await self._release(key)

    async def _compute(
        self, key: str, intent: Intent, n: int, timings: dict[str, float], *, replacing: bool
    ) -> tuple[Entry, str]:
        semantic = self.semantic if intent.query_text.strip() and not replacing else None
        try:
            with self._span("compute"):
                async with asyncio.timeout(self.settings.compute_timeout):
                    encoded, embedded = None, Timings()
                    near: Rows = ()
                    if semantic is not None:  # encoded first, to look for a neighbour's answer
                        with self._span("encode"):
                            encoded, embedded = await self.compute.embed(intent.query_text)
                        found = semantic.lookup(encoded[0], self.version, n, intent)
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
            raise _ComputeFailed(str(exc)) from exc
        entry = await self.store(key, intent, n, playlist)
        if replacing and self.bus is not None:  # on the request path: a short wait at most
            await self.bus.publish(keys=(key,), timeout=self.settings.remote_timeout_ms / 1000)
        if semantic is not None and encoded is not None:
            semantic.remember(encoded[0], key, self.version, n, intent, playlist.rows)
        if self.on_miss is not None:
            self.on_miss(intent, n, playlist)
        timings.update(_stages(stage_ms))
        self.metrics.stages({k: v for k, v in stage_ms.items() if k != "batch"})
        # This miss's cost: its share of the batch's encoding, then its own search and rank.
        share = (stage_ms.get("tokenize", 0.0) + stage_ms.get("encode", 0.0)) / max(
            1.0, stage_ms.get("batch", 1.0)
        )
        cost_ms = share + stage_ms.get("search", 0.0) + stage_ms.get("rank", 0.0)
        self.metrics.miss_compute.observe(cost_ms / 1000)
        return entry, "MISS"

    # -- the region's lease on computing a key --------------------------------------------

    async def _lease(self, key: str) -> bool | None:
        """True: this node computes `key`; False: another edge is on it; None: no lease."""
        tier = self.lease_tier
        if tier is None or self.settings.lease_seconds <= 0:
            return None
        try:
            return await tier.lease(key, self.node_id, self.settings.lease_seconds)
        except TierUnavailable:
            return None  # no Redis, no coordination: compute here

    async def _release(self, key: str) -> None:
        if self.lease_tier is not None:
            with contextlib.suppress(TierUnavailable):
                await self.lease_tier.release(key, self.node_id)

    async def _wait_for_region(self, key: str) -> Entry | None:
        """The entry another edge is computing, read from L2 once it lands (bounded wait)."""
        assert self.lease_tier is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.lease_seconds
        while loop.time() < deadline:
            await asyncio.sleep(0.02)
            try:
                entry = await self.lease_tier.get(key)
            except TierUnavailable:
                return None
            if entry is not None:
                await self.l1.set(key, entry, entry.ttl(self._clock()))
                self.metrics.cache_outcome(self.lease_tier.name, "leased")
                return entry
        return None

    async def store(self, key: str, intent: Intent, n: int, playlist: Playlist) -> Entry:
        """A computed playlist's entry, written to the caches under `key`."""
        body = answers.render(self.artifacts.catalog, playlist, intent, n)
        entry = self._policy.entry(
            body,
            now=self._clock(),
            etag=answers.etag_of(body),
            tags=answers.surrogate_keys(intent, key, self.version, playlist.ids),
        )
        await self.cache.set(key, entry)
        return entry

    async def _recompute(self, intent: Intent, n: int) -> Playlist:
        """A fresh answer for a semantic check, with no neighbour's help."""
        playlist, _ = await self.compute.generate(intent, n)
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

    async def _fallback(self, key: str, intent: Intent, n: int) -> Entry:
        self.metrics.cache_outcome("compute", "fallback")
        playlist = self.compute.generator.fallback(intent, n)
        body = answers.render(self.artifacts.catalog, playlist, intent, n)
        entry = self._policy.entry(
            body,
            now=self._clock(),
            etag=answers.etag_of(body),
            fresh=self.settings.fallback_ttl,
            tags=answers.surrogate_keys(intent, key, self.version, playlist.ids),
            shared=False,
        )
        await self.cache.set(key, entry)
        return entry

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
                younger = await self._younger_in_region(key, seen)
                if younger is not None:
                    return younger, "HIT-L2"
            return await self._produce(key, intent, n, {}, replacing=True)

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
            parsed = self._spec_intent(spec)
            if parsed is None or parsed[2] != key:  # unreadable, or another version's key
                continue
            wanted, intent, _same = parsed
            self._revalidate(key, intent, wanted.n, seen=entry)
            started += 1
        return started

    def _spec_intent(self, raw: bytes) -> tuple[PromptSpec, Intent, str] | None:
        """A recorded prompt spec, its intent and key under this version; None if the spec
        no longer reads or parses."""
        try:
            spec = msgspec.json.decode(raw, type=PromptSpec)
            request = PlaylistRequest(prompt=spec.prompt, slots=spec.slots, n=spec.n)
            intent, key = self.intent(request)
        except (msgspec.DecodeError, msgspec.ValidationError, IntentError, BadRequest):
            return None
        return spec, intent, key

    async def _younger_in_region(self, key: str, seen: Entry) -> Entry | None:
        """An entry for `key` in L2 that another edge made after `seen` and that is not due
        for refreshing yet, now also in L1."""
        if self.lease_tier is None:
            return None
        try:
            shared = await self.lease_tier.get(key)
        except TierUnavailable:
            return None
        now = self._clock()
        if shared is None or shared.created <= seen.created:
            return None
        if now >= self.headers.refresh_due(shared):
            return None
        await self.l1.set(key, shared, shared.ttl(now))
        return shared

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
        headers["x-variant"] = self.variant
        self.metrics.answered(self.variant, self.version)
        if answers.etag_matches(if_none_match, entry.etag):
            return Answer(304, b"", headers)
        return Answer(200, entry.body, headers)

    async def _mostly_rejected(self, prompt_key: str) -> bool:
        """Do the region's labels say listeners mostly skip this prompt's playlists?"""
        if self.labels is None:
            return False
        try:
            async with asyncio.timeout(self.settings.remote_timeout_ms / 1000):
                return (await self.labels.get(prompt_key)).mostly_rejected()
        except (StoreUnavailable, TimeoutError):
            return False

    async def _session_skips(self, token: str) -> frozenset[str]:
        """Tracks the listener skipped early this session (from the event consumers); none
        when the session store does not answer within the remote timeout."""
        if self.sessions is None:
            return frozenset()
        try:
            async with asyncio.timeout(self.settings.remote_timeout_ms / 1000):
                return await self.sessions.skipped(self.user_hash(token))
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("session state unavailable", extra={"error": repr(exc)})
            return frozenset()

    async def _personal(
        self,
        entry: Entry,
        label: str,
        request: PlaylistRequest,
        intent: Intent,
        now: float,
        timings: dict[str, float],
        start: float,
    ) -> Answer:
        """The shared answer minus this user's excluded tracks, backfilled; never cached shared."""
        assert request.user is not None
        excluded = await self.exclusions.get(request.user) | await self._session_skips(request.user)
        head = answers.parse_head(entry.body)
        kept = [t for t in head.tracks if t.id not in excluded]
        if len(kept) < len(head.tracks):
            seen = {t.id for t in kept} | excluded
            extra = self.compute.generator.fallback(intent, self.settings.max_length)
            for track in answers.track_list(self.artifacts.catalog, extra):
                if len(kept) >= request.n:
                    break
                if track.id not in seen:
                    kept.append(track)
        ids = [t.id for t in kept]
        print_ = fingerprint(self.version, ids)
        personal = msgspec.structs.replace(head, tracks=kept, fingerprint=print_)
        body = answers.encode_head(personal)
        age = int(entry.age(now))
        timings["total"] = (time.perf_counter() - start) * 1000
        headers = self.headers.headers(
            entry, label=label, age=age, timings=timings, etag=answers.etag_of(body), private=True
        )
        headers["x-variant"] = self.variant
        self.metrics.answered(self.variant, self.version)
        log.debug(
            "personalised",
            extra={"user": self.user_hash(request.user), "dropped": len(head.tracks) - len(kept)},
        )
        return Answer(200, body, headers)

    async def warm_up(self, prompts: list[str]) -> None:
        """Run prompts through the miss path (not cached) so first requests are not slow."""
        for prompt in prompts:
            intent = self.artifacts.parser.parse(prompt)
            with self.compute.admit():
                await self.compute.generate(intent, self.settings.default_length)

    # -- prewarm -------------------------------------------------------------------------

    async def prewarm(self, wanted: list[tuple[str, bytes]], seconds: float) -> dict[str, int]:
        """Bring the region's popular answers into L1: from a lower tier if one has them
        (the lookup promotes them), else computed again from their request description.

        Keys of another artifact version are rebuilt under this version's key. Stops at the
        deadline, or when compute is overloaded.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        done = {"promoted": 0, "computed": 0, "skipped": 0, "rejected": 0}
        for _key, raw in wanted:
            if loop.time() >= deadline:
                break
            parsed = self._spec_intent(raw)
            if parsed is None:
                done["skipped"] += 1
                continue
            spec, intent, key = parsed
            if await self._mostly_rejected(intent.prompt_key()):
                done["rejected"] += 1  # listeners skip its playlists: not worth a warm slot
                continue
            lookup = await self.cache.get(key)
            if lookup is not None and lookup.entry.is_fresh(self._clock()):
                done["promoted"] += 1
                continue
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await self._miss(key, intent, spec.n, None, {})
            except (Overloaded, TimeoutError):
                break
            done["computed"] += 1
        return done

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

    async def apply(self, invalidation: Invalidation) -> None:
        """Another edge purged or replaced entries: drop our L1 copies."""
        for key in invalidation.keys:
            await self.l1.delete(key)
        if invalidation.tags:
            await self.l1.purge_tags(invalidation.tags)

    async def reset(self) -> None:
        """The invalidation feed was interrupted: nothing in L1 can be trusted to be current."""
        self.l1.clear()

    async def smoke_test(self, prompts: list[str]) -> None:
        """Compute a playlist for each prompt (not cached); ModelError if one comes back
        empty: a version that cannot answer must not take traffic."""
        for prompt in prompts:
            intent = self.artifacts.parser.parse(prompt)
            with self.compute.admit():
                playlist, _ = await self.compute.generate(intent, self.settings.default_length)
            if not playlist.ids:
                raise ModelError(f"{self.version} answered {prompt!r} with no tracks")

    async def close(self, *, tiers: bool = True) -> None:
        """Stop this service; `tiers=False` leaves the cache tiers open (a candidate version
        shares them with the primary)."""
        if self.bus is not None:
            await self.bus.close()
        tasks = [*self._background, *([self._verifying] if self._verifying else [])]
        await asyncio.gather(*(cancel_and_wait(task) for task in tasks))
        self.compute.close()
        if tiers:
            for tier in self.cache.tiers:
                await tier.close()


def _hit_label(entry: Entry, tier: str) -> str:
    return f"HIT-{tier.upper()}" if entry.shared else "FALLBACK"


def _stages(stage_ms: dict[str, float]) -> dict[str, float]:
    """A miss's compute stages in milliseconds: encode (with tokenizing), search, rank."""
    return {
        "encode": stage_ms.get("tokenize", 0.0) + stage_ms.get("encode", 0.0),
        "search": stage_ms.get("search", 0.0),
        "rank": stage_ms.get("rank", 0.0),
    }
