"""Prometheus metrics of one edge process, in a registry of its own (no global state)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST.split("; charset")[0]
"""The exposition format's media type; the response adds `charset=utf-8` itself (a text/
type), which it would otherwise say twice."""

_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class Metrics:
    """Request, cache, compute and rejection metrics; label children are bound once."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "edge_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "edge_request_seconds",
            "Time from request to response body, by route",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.answer_latency = Histogram(
            "edge_answer_seconds",
            "Time from request to response body of each playlist answer, by its X-Cache "
            "(HIT-L1, HIT-L2, HIT-GLOBAL, SEMANTIC, MISS, STALE, FALLBACK)",
            ["tier"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._answer_latency: dict[str, Histogram] = {}
        self.cache = Counter(
            "edge_cache",
            "Cache outcomes by tier and kind (hit, miss, stale, coalesced, "
            "fallback, error, revalidated)",
            ["tier", "kind"],
            registry=r,
        )
        self.stage = Histogram(
            "edge_stage_seconds",
            "Miss path stage durations",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.semantic_threshold = Gauge(
            "edge_semantic_threshold",
            "Cosine a semantic hit needs, per bucket (the kinds of slot a prompt sets)",
            ["bucket"],
            registry=r,
        )
        self.semantic_verified = Counter(
            "edge_semantic_verified",
            "Semantic hits and near misses recomputed off the request path, by outcome",
            ["bucket", "kind", "outcome"],
            registry=r,
        )
        self.semantic_bound = Gauge(
            "edge_semantic_false_hit_bound",
            "Upper 95 % confidence bound of the semantic false-hit rate since the bucket's "
            "threshold last changed",
            ["bucket"],
            registry=r,
        )
        self.semantic_cpu = Counter(
            "edge_semantic_cpu_seconds",
            "CPU seconds of semantic hits: lookups (search, veto, remembering, sampling) and "
            "verification (a sample's fresh answer: its encoding share, search and rank, and "
            "the judgement)",
            ["part"],
            registry=r,
        )
        self.semantic_dropped = Counter(
            "edge_semantic_checks_dropped",
            "Sampled semantic checks dropped because the verification queue was full",
            registry=r,
        )
        self.queue_depth = Gauge(
            "edge_compute_queue_depth",
            "Misses admitted to compute (queued or running)",
            registry=r,
        )
        self.compute_degraded = Gauge(
            "edge_compute_degraded",
            "1 while compute is at its queue limit and misses beyond it are shed (503)",
            registry=r,
        )
        self.batch_size = Histogram(
            "edge_encoder_batch_size",
            "Prompts per encoder batch",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=r,
        )
        self.rejections = Counter(
            "edge_rejections",
            "Requests refused before compute, by reason",
            ["reason"],
            registry=r,
        )
        self.ready = Gauge("edge_ready", "1 when artifacts are loaded and warm", registry=r)
        self.purges = Counter("edge_purges", "Purges run from this node", registry=r)
        self.cdn_purges = Counter(
            "edge_cdn_purges",
            "PURGE requests sent to shared caches, by target and outcome (ok, retried, failed)",
            ["target", "outcome"],
            registry=r,
        )
        self.breaker = Gauge(
            "edge_breaker_state",
            "Circuit breaker of each remote tier: 0 closed, 1 half-open, 2 open",
            ["tier"],
            registry=r,
        )
        self.write_behind_dropped = Counter(
            "edge_write_behind_dropped",
            "Writes to a write-behind tier refused because its queue was full",
            ["tier"],
            registry=r,
        )
        self.write_behind_pending = Gauge(
            "edge_write_behind_pending",
            "Writes queued (or held while the tier is down) for a write-behind tier",
            ["tier"],
            registry=r,
        )
        self.events = Counter(
            "edge_events",
            "Events taken by POST /v1/events: accepted (new) or duplicate",
            ["outcome"],
            registry=r,
        )
        self.event_append = Histogram(
            "edge_event_append_seconds",
            "Time to append one accepted batch to the region's event log",
            registry=r,
        )
        self.event_lag = Gauge(
            "edge_event_lag_seconds",
            "Age of the oldest event in the last batch this node's consumer of each group "
            "handled: how far the group runs behind the region's event stream",
            ["group"],
            registry=r,
        )
        self.event_labels = Counter(
            "edge_event_labels",
            "Prompt-quality labels (accept or reject, rules v1) this node's consumer counted",
            registry=r,
        )
        # What a prompt costs: compute per miss, bytes sent to each tier, bytes served, and
        # this process's CPU (process_cpu_seconds_total); `loadtest run` turns their change
        # over a run into cost per 1,000 prompts.
        self.miss_compute = Histogram(
            "edge_miss_compute_seconds",
            "Compute time of one miss: its share of the encoder batch, plus search and rank",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.tier_written = Counter(
            "edge_tier_written_bytes",
            "Bytes of answers written to each cache tier",
            ["tier"],
            registry=r,
        )
        self.served = Counter("edge_served_bytes", "Response body bytes sent", registry=r)
        ProcessCollector(registry=r)
        self.variants = Counter(
            "edge_variant_answers",
            "Playlists answered, by variant (primary or candidate) and artifact version",
            ["variant", "version"],
            registry=r,
        )
        self._variants: dict[tuple[str, str], Counter] = {}
        self.shadow_overlap = Histogram(
            "edge_shadow_overlap",
            "Share of the served playlist's tracks the candidate version also chose, per slot "
            "kind (shadow comparisons)",
            ["kind"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=r,
        )
        self.shadow_correlation = Histogram(
            "edge_shadow_rank_correlation",
            "Spearman correlation of the shared tracks' order, served vs candidate, per kind",
            ["kind"],
            buckets=(-0.5, 0.0, 0.25, 0.5, 0.75, 0.9, 1.0),
            registry=r,
        )
        self._requests: dict[tuple[str, int], Counter] = {}
        self._latency: dict[str, Histogram] = {}
        self._cache: dict[tuple[str, str], Counter] = {}

    def request(self, route: str, status: int, seconds: float, tier: str | None = None) -> None:
        """One request's status and duration; `tier` is the X-Cache of a playlist answer."""
        counter = self._requests.get((route, status))
        if counter is None:
            counter = self._requests[route, status] = self.requests.labels(route, str(status))
        counter.inc()
        histogram = self._latency.get(route)
        if histogram is None:
            histogram = self._latency[route] = self.latency.labels(route)
        histogram.observe(seconds)
        if tier is not None:
            by_tier = self._answer_latency.get(tier)
            if by_tier is None:
                by_tier = self._answer_latency[tier] = self.answer_latency.labels(tier)
            by_tier.observe(seconds)

    def answered(self, variant: str, version: str) -> None:
        counter = self._variants.get((variant, version))
        if counter is None:
            counter = self._variants[variant, version] = self.variants.labels(variant, version)
        counter.inc()

    def cache_outcome(self, tier: str, kind: str) -> None:
        counter = self._cache.get((tier, kind))
        if counter is None:
            counter = self._cache[tier, kind] = self.cache.labels(tier, kind)
        counter.inc()

    def stages(self, timings: dict[str, float]) -> None:
        for name, ms in timings.items():
            self.stage.labels(name).observe(ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
