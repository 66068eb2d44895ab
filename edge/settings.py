"""`EdgeSettings`: every knob of an edge node, read from `EDGE_*` variables in one place."""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import msgspec
from limits import parse as parse_rate

from edge.ratelimit import parse_networks, parse_tiers
from regional.connections import is_redis_url

PREFIX = "EDGE_"


class EdgeSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Settings of one edge node; `from_env` fills them from `EDGE_<FIELD>` variables."""

    artifacts: str = "artifacts/default"
    """Artifact folder to serve (built by `python -m models build`)."""
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = 8000
    """TCP port to listen on."""
    workers: int = 1
    """Server processes; each loads the artifacts and keeps its own L1."""
    verify_artifacts: bool = True
    """Check every artifact file's sha256 against the manifest at startup."""
    l1_bytes: int = 64 * 1024 * 1024
    """Byte budget of the in-process L1 (response bytes plus per-entry overhead)."""
    l1_max_ttl: float = 0.0
    """Longest an entry stays in L1, in seconds, however long it lives below (0: no cap)."""
    l2_url: str = ""
    """The region's shared L2: redis://, rediss://, redis+sentinel://h:p,h:p/service, or
    redis+cluster://h:p,h:p. Empty: no L2."""
    global_url: str = ""
    """The durable global store: a directory (diskcache) or a Redis URL. Empty: `data_dir`/global;
    `none`: no global store."""
    region: str = "local"
    """Name of this node's region (logs, metrics, shared keys)."""
    data_dir: str = "data"
    """Where the node keeps local state (the default global store)."""
    global_bytes: int = 1 << 30
    """Size limit of a diskcache global store, in bytes."""
    remote_timeout_ms: float = 50.0
    """Hard limit of each call to a Redis tier; a slower call is a miss."""
    breaker_window: float = 10.0
    """Seconds of call outcomes a remote tier's circuit breaker judges."""
    breaker_min_calls: int = 5
    """Calls within the window before the breaker may open."""
    breaker_failure_rate: float = 0.5
    """Share of failed calls within the window that opens the breaker."""
    breaker_open_seconds: float = 5.0
    """Seconds an open breaker refuses calls before letting probes through."""
    breaker_probes: int = 1
    """Calls let through while half-open; all must succeed to close it."""
    write_behind_queue: int = 1024
    """Writes to the global store waiting at most; beyond it they are dropped and counted."""
    ttl: float = 3600.0
    """Seconds a shared answer stays fresh (Cache-Control max-age), before jitter."""
    ttl_jitter: float = 0.1
    """Fraction by which each answer's freshness is randomly shortened or lengthened."""
    shared_max_age: float = 0.5
    """Share of an answer's freshness that shared caches (CDNs) are told as s-maxage; the
    node keeps the answer fresh for all of it and refreshes popular answers before shared
    copies run out."""
    refresh_ahead: float = 0.5
    """Share of the shared lifetime (s-maxage) after which an answer asked for lately is
    recomputed in the background, still fresh, in (0, 1]."""
    refresh_ahead_top: int = 1000
    """Most keys per shared lifetime refreshed ahead of expiry (0: none)."""
    cdn_purge_urls: str = ""
    """Shared caches in front of the node (comma-separated base URLs, e.g.
    http://varnish:6081): /admin/purge also sends them a PURGE by xkey (Varnish with
    varnish-modules), retried with backoff."""
    cdn_purge_retries: int = 4
    """Attempts after the first to deliver a purge to a shared cache that failed."""
    canonical_redirect: bool = False
    """Answer a GET whose query string is not in canonical form with a 308 to the canonical
    URL, so shared caches hold one copy per request."""
    stale_while_revalidate: float = 600.0
    """Seconds after expiry a stale answer is served while it is recomputed."""
    stale_if_error: float = 86400.0
    """Seconds after expiry a stale answer is served when recomputing fails."""
    fallback_ttl: float = 10.0
    """Seconds a degraded (fallback) answer may be cached; it never enters shared tiers."""
    private_max_age: float = 60.0
    """max-age of personalised (Cache-Control: private) answers."""
    default_length: int = 30
    """Playlist length when a request gives no n."""
    max_length: int = 100
    """Largest n a request may ask for."""
    max_body_bytes: int = 8192
    """Largest POST body accepted."""
    max_header_bytes: int = 16384
    """Largest request head (request line and headers) the server reads; beyond it, 431.
    (More than 100 header fields also get 431.)"""
    header_timeout: float = 5.0
    """Seconds a client has to send its request head before the server closes the
    connection (slow-header clients)."""
    body_timeout: float = 10.0
    """Seconds a client has to send its whole request body; beyond it, 408."""
    encoder_threads: int = 2
    """onnxruntime intra-op threads of the prompt encoder."""
    compute_threads: int = 1
    """Threads that run index search and ranking for misses."""
    compute_nice: int = 10
    """How far below the event loop the encoder (with onnxruntime's own threads) and the
    ranking threads run, in Linux nice steps (0: same priority), so hits keep their CPU
    while misses saturate it."""
    compute_queue: int = 64
    """Misses admitted at once (queued or running); beyond it misses get 503."""
    compute_timeout: float = 2.0
    """Seconds a miss may take before the fallback answers instead."""
    batch_window_ms: float = 2.0
    """How long the first queued prompt waits for others to share its encoder batch."""
    batch_size: int = 32
    """Most prompts encoded in one batch."""
    retry_after: int = 1
    """Retry-After seconds sent with 503 answers."""
    key_memo: int = 16384
    """Raw query strings remembered with their cache key, to skip parsing on repeats."""
    user_exclusions_max: int = 500
    """Most excluded tracks kept per user."""
    warmup: bool = True
    """Run a few prompts through the miss path before reporting ready."""
    access_log: bool = False
    """Log one JSON line per request (misses and errors are always logged)."""
    log_level: str = "info"
    """Level of the JSON logs on stderr."""
    split_percent: float = 0.0
    """Share of listeners (anonymous requests: prompts) a candidate version answers once it
    is ready, 0-100; changed at run time through /admin/versions."""
    split_experiment: str = "rollout"
    """Names the assignment of listeners to versions (a new name reshuffles them)."""
    shadow_ratio: float = 0.0
    """Share of misses a ready candidate version also answers, to compare, 0-1."""
    candidate_artifacts: str = ""
    """The artifact folder SIGHUP loads as the candidate version (the admin endpoint names
    its own)."""
    versions_memory_mb: int = 4096
    """Most memory two artifact versions may take together (about their files' size); a
    candidate that would go over it is refused."""
    traces: str = "none"
    """OpenTelemetry traces: none, console (spans on stdout), or otlp (OTLP over HTTP to
    OTEL_EXPORTER_OTLP_ENDPOINT, as the OpenTelemetry SDK reads it)."""
    trace_ratio: float = 1.0
    """Fraction of requests traced (parent-based: a traced caller's choice is kept)."""
    seed: int = 0
    """Seed of the TTL jitter."""
    lease_seconds: float = 2.0
    """With an L2: how long one edge holds the region's lease on computing a key while the
    others wait for it in L2 (0: every edge computes its own misses)."""
    prewarm_top: int = 100
    """Popular prompts of the region an edge brings into L1 before it reports ready."""
    prewarm_seconds: float = 10.0
    """Longest the prewarm may delay readiness."""
    popularity_interval: float = 10.0
    """Seconds between merges of this edge's prompt counts into the region's top list."""
    semantic: bool = True
    """Serve a cached answer for a prompt that means the same (same slots, close embedding)."""
    semantic_threshold: float = 0.85
    """Least cosine between prompts for a semantic hit (calibrated in docs/BENCHMARKS.md)."""
    semantic_capacity: int = 50_000
    """Prompts the semantic index remembers; the oldest make room."""
    semantic_verify_rate: float = 0.02
    """Share of semantic hits and near misses recomputed while compute is idle, to keep each
    bucket's false-hit rate measured (0: none)."""
    semantic_near_margin: float = 0.1
    """How far below its threshold a neighbour's answer still joins a miss's candidates."""
    events_url: str = ""
    """The region's event log: a Redis URL (streams); empty: the L2 Redis if there is one,
    else an SQLite file in data_dir; `none`: no events API on this node."""
    events_partitions: int = 8
    """Streams per region on Redis; a hash of the user picks one."""
    events_maxlen: int = 1_000_000
    """Approximate bound on each stream's length (oldest entries go first)."""
    events_dedupe_seconds: int = 86_400
    """How long an event_id is remembered: a re-sent event within it is accepted once."""
    events_max_batch: int = 500
    """Most events in one POST /v1/events."""
    events_max_bytes: int = 1_048_576
    """Largest POST /v1/events body."""
    events_sync: bool = True
    """Embedded log only: fsync every batch (SQLite synchronous=FULL); false: NORMAL."""
    event_consumers: bool = True
    """Run the session-state and label consumers of the region's log on this node."""
    user_hash_key: str = ""
    """Secret for the keyed hash that replaces user tokens (16+ characters, the same on every
    edge of a region); empty: a random key kept in data_dir/user-hash.key."""
    session_ttl: float = 1800.0
    """Seconds a listener's session state (early skips, recent plays) lives after its last event."""
    early_skip_ms: int = 30_000
    """A skip before this much listening excludes the track from the listener's next lists
    and counts against the prompt."""
    archive_dir: str = ""
    """Where this node's archiver writes Parquet. Empty: data_dir/archive with the embedded
    log, no archiver with a Redis log (set it on one node per region); `none`: no archiver."""
    archive_retention: float = 86_400.0
    """Seconds archived events stay in the log before they are trimmed."""
    admin_key: str = ""
    """Bearer token the /admin endpoints require; empty: admin endpoints refuse every call."""
    api_keys_file: str = ""
    """File of `name:scope[,scope]:sha256-hex-of-key[:tier]` lines; clients send the key in
    X-API-Key. Empty: no key needed (the node says so at startup)."""
    protect_ops: bool = False
    """With API keys: /healthz, /readyz and /metrics need a key with the admin scope too."""
    rate_limit: str = ""
    """Requests per client to /v1/ endpoints, e.g. `600/minute`, counted across the region in
    the L2 Redis (per process without one, or while it is down); empty: no limit."""
    rate_limit_tiers: str = ""
    """Limits for the tiers named in the API keys file, e.g. `gold=6000/minute,free=60/minute`."""
    client_header: str = ""
    """Header the CDN sets to the client's identity (e.g. CF-Connecting-IP); trusted as is."""
    trusted_proxies: str = ""
    """Addresses or networks (comma-separated) whose X-Forwarded-For is believed."""
    fault_injection: bool = False
    """Accept POST /admin/faults, which makes the encoder fail or hang (failover drills)."""
    bench_routes: bool = False
    """Expose /_bench/bare, the same bytes from a plain dict, for `loadtest.bench http`."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> EdgeSettings:
        """Settings from `EDGE_*` variables (default: the process environment), then overrides."""
        env = os.environ if env is None else env
        fields = {f.lower(): None for f in cls.__struct_fields__}
        values: dict[str, object] = {}
        for name, value in env.items():
            if name.startswith(PREFIX) and name[len(PREFIX) :].lower() in fields:
                values[name[len(PREFIX) :].lower()] = value
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            settings = msgspec.convert(values, cls, strict=False)
        except msgspec.ValidationError as exc:
            raise ValueError(f"bad EDGE_* setting: {exc}") from exc
        settings.check()
        return settings

    def check(self) -> None:
        """Reject values no node can run with."""
        problems = [
            f"{name} must be positive"
            for name in (
                "port",
                "workers",
                "l1_bytes",
                "global_bytes",
                "remote_timeout_ms",
                "breaker_window",
                "breaker_min_calls",
                "breaker_open_seconds",
                "breaker_probes",
                "write_behind_queue",
                "semantic_capacity",
                "popularity_interval",
                "ttl",
                "default_length",
                "max_length",
                "max_body_bytes",
                "versions_memory_mb",
                "header_timeout",
                "body_timeout",
                "encoder_threads",
                "compute_threads",
                "compute_queue",
                "compute_timeout",
                "batch_size",
                "retry_after",
                "events_partitions",
                "events_maxlen",
                "events_dedupe_seconds",
                "events_max_batch",
                "events_max_bytes",
                "session_ttl",
                "early_skip_ms",
            )
            if getattr(self, name) <= 0
        ]
        if self.max_header_bytes < 8192:
            problems.append("max_header_bytes must be at least 8192")
        if self.l1_max_ttl < 0:
            problems.append("l1_max_ttl must not be negative")
        if not 0 < self.semantic_threshold <= 1:
            problems.append("semantic_threshold must be in (0, 1]")
        if not 0 <= self.semantic_verify_rate <= 1:
            problems.append("semantic_verify_rate must be in [0, 1]")
        if not 0 <= self.semantic_near_margin < 1:
            problems.append("semantic_near_margin must be in [0, 1)")
        if not 0 <= self.split_percent <= 100:
            problems.append("split_percent must be in [0, 100]")
        if not 0 <= self.shadow_ratio <= 1:
            problems.append("shadow_ratio must be in [0, 1]")
        if not self.split_experiment.strip():
            problems.append("split_experiment must not be empty")
        if self.traces not in ("none", "console", "otlp"):
            problems.append("traces must be none, console or otlp")
        if not 0 <= self.trace_ratio <= 1:
            problems.append("trace_ratio must be in [0, 1]")
        if not 0 < self.breaker_failure_rate <= 1:
            problems.append("breaker_failure_rate must be in (0, 1]")
        if self.l2_url and not is_redis_url(self.l2_url):
            problems.append(
                "l2_url must be a redis://, rediss://, unix://, redis+sentinel:// "
                "or redis+cluster:// URL"
            )
        if "://" in self.global_url and not is_redis_url(self.global_url):
            problems.append("global_url must be a directory, a Redis URL, or none")
        if self.events_url not in ("", "none") and not is_redis_url(self.events_url):
            problems.append("events_url must be a Redis URL, empty, or none")
        for name in ("rate_limit", "rate_limit_tiers", "trusted_proxies"):
            problem = _check_limit_setting(name, getattr(self, name))
            if problem:
                problems.append(problem)
        if self.user_hash_key and len(self.user_hash_key) < 16:
            problems.append("user_hash_key must have at least 16 characters")
        if not 0 < self.shared_max_age <= 1:
            problems.append("shared_max_age must be in (0, 1]")
        if not 0 < self.refresh_ahead <= 1:
            problems.append("refresh_ahead must be in (0, 1]")
        if self.refresh_ahead_top < 0 or self.cdn_purge_retries < 0:
            problems.append("refresh_ahead_top and cdn_purge_retries must not be negative")
        for url in filter(None, (u.strip() for u in self.cdn_purge_urls.split(","))):
            if not url.startswith(("http://", "https://")):
                problems.append(f"cdn_purge_urls: {url!r} is not an http(s) URL")
        if not 0 <= self.ttl_jitter < 1:
            problems.append("ttl_jitter must be in [0, 1)")
        if not 1 <= self.default_length <= self.max_length:
            problems.append("default_length must be within 1..max_length")
        if problems:
            raise ValueError("bad EDGE_* settings: " + "; ".join(problems))

    def env(self) -> dict[str, str]:
        """These settings as EDGE_* variables (passed to server worker processes)."""
        return {
            PREFIX + name.upper(): _env_value(getattr(self, name))
            for name in self.__struct_fields__
        }


def markdown_table() -> str:
    """The README's settings table, from the field docstrings in this file."""
    source = Path(__file__).read_text()
    cls = next(
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.ClassDef) and node.name == EdgeSettings.__name__
    )
    defaults = EdgeSettings()
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for field, doc in zip(cls.body, [*cls.body[1:], None], strict=True):
        if not isinstance(field, ast.AnnAssign) or not isinstance(field.target, ast.Name):
            continue
        name = field.target.id
        text = ""
        if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
            text = " ".join(str(doc.value.value).split())
        value = _env_value(getattr(defaults, name))
        rows.append(
            f"| `{PREFIX}{name.upper()}` | {f'`{value}`' if value else '(empty)'} | {text} |"
        )
    return "\n".join(rows) + "\n"


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check_limit_setting(name: str, value: str) -> str | None:
    """What is wrong with a rate-limit setting, if anything (read as the limiter reads it)."""
    readers: dict[str, Callable[[str], object]] = {
        "rate_limit": parse_rate,
        "rate_limit_tiers": parse_tiers,
        "trusted_proxies": parse_networks,
    }
    try:
        if value:
            readers[name](value)
    except ValueError:
        return f"{name} cannot be read: {value!r}"
    return None
