"""`create_app(settings)`: the Litestar application of an edge node.

`EdgeApp` answers `GET /v1/playlists` before routing. A fresh L1 hit of a query string
already validated costs a dict lookup, an L1 peek and one `send`; with canonical redirects
on, a query string not in canonical form gets its 308; any other valid query (first sight,
stale entry, miss) runs the service's full path, whose parsers validate as the routed
handler does. Headers, problem documents and metrics are those of the routed path.
Bad queries, other routes, a version split, a caller without a good key, and misses while
tracing is on go through Litestar as usual.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.routes import HTTPRoute
from litestar.types import Message, Receive, ReceiveMessage, Scope
from opentelemetry.sdk.trace import TracerProvider

from edge import admin, controllers, logs, ops, playground, problems, telemetry
from edge.answers import Answer
from edge.errors import EdgeError, RequestTimeout
from edge.hooks import DrillHooks
from edge.node import EdgeNode
from edge.problems import HANDLERS
from edge.ratelimit import RateLimiter
from edge.schemas import PlaylistRequest, Problem
from edge.service import PlaylistService
from edge.settings import EdgeSettings
from models.artifacts import Artifacts
from models.errors import IntentError
from models.intent import Intent

log = logging.getLogger("edge.access")

ROUTES = frozenset(
    {"/v1/playlists", "/v1/events", "/healthz", "/readyz", "/metrics", "/_bench/bare"}
)
_JSON = b"application/json"
_PROBLEM_JSON = problems.PROBLEM_JSON.encode()


class EdgeApp(Litestar):
    """Litestar plus the lean hit path and per-request metrics for every route."""

    node: EdgeNode
    allowed: dict[str, bytes]
    """The Allow header of each fixed path."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        route = path if path in ROUTES else ("/schema" if path.startswith("/schema") else "other")
        limiter = self.node.limiter
        if limiter is not None and path.startswith("/v1/"):
            refused = await self._limit(limiter, scope)
            if refused is not None:
                status, headers, body = refused
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                self._observe(route, status, start, scope)
                return
        if scope["method"] == "OPTIONS" and path in self.allowed:
            # Litestar's own OPTIONS answer keeps the methods its route had when the first
            # handler was added, so a path with GET and POST would say only GET.
            headers = [(b"allow", self.allowed[path]), (b"cache-control", b"no-store")]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            self._observe(route, 204, start, scope)
            return
        if (
            path == "/v1/playlists"
            and scope["method"] == "GET"
            and self.node.lean_path
            and self.node.versions.percent <= 0  # a split assigns by prompt: the routed way
        ):
            service = self.node.service
            # A caller without a good key goes the routed way, which answers 401 or 403; an
            # open node does not look for one.
            auth = self.node.auth
            if service is not None and (
                auth.open or auth.allows(_header(scope, b"x-api-key"), "read")
            ):
                raw = scope["query_string"]
                try:
                    # Only canonical query strings are ever memoised for hits (with redirects
                    # on, others stop at the redirect), so a hit needs no canonical check.
                    hit = service.fresh_hit(raw, _if_none_match(scope)) or service.redirect(raw)
                except (EdgeError, IntentError):
                    hit = None  # a bad query: the routed way answers with its problem
                if hit is not None:
                    await self._lean_get(service, hit, scope, send, route, start)
                    return
                # Misses too, unless tracing is on (they are then traced under the server
                # span) or the query is bad: the routed way then answers with its problem.
                if self.node.tracer is telemetry.NO_TRACER:
                    try:
                        prepared = service.prepare_get(raw)
                    except (EdgeError, IntentError):
                        prepared = None
                    if prepared is not None:
                        await self._lean_get(service, prepared, scope, send, route, start)
                        return
        status = 500
        tier: str | None = None

        served = self.node.metrics.served

        async def send_status(message: Message) -> None:
            nonlocal status, tier
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-cache":
                        tier = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                served.inc(len(message.get("body", b"")))
            await send(message)

        try:
            await super().__call__(scope, self._body_deadline(receive), send_status)
        finally:
            self._observe(route, status, start, scope, tier)

    async def _lean_get(
        self,
        service: PlaylistService,
        found: Answer | tuple[PlaylistRequest, Intent, str],
        scope: Any,
        send: Any,
        route: str,
        start: float,
    ) -> None:
        """GET /v1/playlists without Litestar's routing: a fresh L1 hit's answer, or the full
        path's for a query already validated (`prepare_get`). Errors on the way (overload,
        no model) become the problem documents the routed way would send."""
        status = 500  # until something is sent: an unexpected error propagates
        tier: str | None = None
        try:
            if isinstance(found, Answer):
                answer = found
            else:
                try:
                    answer = await service.answer(*found, _if_none_match(scope))
                except (EdgeError, IntentError) as exc:
                    status, problem_headers, body = problems.problem(exc, scope["path"])
                    await self._send(send, status, problem_headers, body, _PROBLEM_JSON)
                    return
            status, tier = answer.status, answer.headers.get("x-cache")
            await self._send(send, status, answer.headers, answer.body, _JSON)
        finally:
            self._observe(route, status, start, scope, tier)

    async def _send(
        self, send: Any, status: int, fields: dict[str, str], body: bytes, content_type: bytes
    ) -> None:
        headers = [(k.encode(), v.encode()) for k, v in fields.items()]
        if status != 304:  # a 304 has no body: no type, no length (RFC 9110 §15.4.5)
            headers += [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.node.metrics.served.inc(len(body))

    def _body_deadline(self, receive: Receive) -> Receive:
        """`receive`, bounded: the whole body must arrive within `body_timeout` seconds of the
        request's start, or the request ends in 408 (a slow client holds no worker for long).
        Once the body is in, messages pass through unbounded."""
        timeout = self.node.settings.body_timeout
        deadline = asyncio.get_running_loop().time() + timeout
        done = False

        async def bounded() -> ReceiveMessage:
            nonlocal done
            if done:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {timeout:g} s"
                ) from None
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return bounded

    async def _limit(
        self, limiter: RateLimiter, scope: Any
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes] | None:
        """A 429 response for a client over its limit; None to go on."""
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        key = self.node.auth.lookup(headers.get("x-api-key"))
        peer = scope["client"][0] if scope.get("client") else None
        identity, item = limiter.client(key, headers, peer)
        verdict = await limiter.hit(identity, item)
        if verdict.allowed:
            return None
        self.node.metrics.rejections.labels("rate-limit").inc()
        problem = Problem(
            type="/problems/too-many-requests",
            title="Too many requests",
            status=429,
            detail=f"over the limit of {item}; try again in {verdict.reset_seconds} s",
            instance=scope["path"],
        )
        return (
            429,
            [
                (b"content-type", b"application/problem+json"),
                (b"cache-control", b"no-store"),
                (b"retry-after", b"%d" % verdict.reset_seconds),
                (b"ratelimit-limit", b"%d" % verdict.limit),
                (b"ratelimit-remaining", b"%d" % max(0, verdict.remaining)),
                (b"ratelimit-reset", b"%d" % verdict.reset_seconds),
            ],
            msgspec.json.encode(problem),
        )

    def _observe(
        self, route: str, status: int, start: float, scope: Any, tier: str | None = None
    ) -> None:
        seconds = time.perf_counter() - start
        self.node.metrics.request(route, status, seconds, tier)
        if self.node.settings.access_log:
            # The path only: query strings carry unmasked prompts.
            log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "ms": round(seconds * 1000, 3),
                },
            )


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


def _if_none_match(scope: Scope) -> str | None:
    return _header(scope, b"if-none-match")


def create_app(
    settings: EdgeSettings | None = None,
    *,
    artifacts: Artifacts | None = None,
    clock: Callable[[], float] = time.time,
    lean_path: bool = True,
    tracer_provider: TracerProvider | None = None,
    signals: bool = False,
) -> EdgeApp:
    """Build an edge app; `artifacts` (already loaded), `clock` and `tracer_provider` (an
    in-memory exporter's) are for tests; `signals` installs the version signal handlers
    (for a served process, not one in a test's event loop)."""
    settings = settings or EdgeSettings.from_env()
    node = EdgeNode(settings, artifacts=artifacts, clock=clock)
    node.lean_path = lean_path
    tracing = tracer_provider or telemetry.provider(settings)
    node.tracer = telemetry.tracer(tracing)
    plugins: list[Any] = []
    if tracing is not None:
        config = OpenTelemetryConfig(
            tracer_provider=tracing, server_request_hook_handler=telemetry.redact
        )
        plugins.append(OpenTelemetryPlugin(config))

    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        logs.configure(settings.log_level)
        node.start(signals=signals)
        try:
            yield
        finally:
            await node.close()
            if tracing is not None and tracer_provider is None:
                tracing.shutdown()  # sends the spans still batched

    handlers: list[Any] = [
        controllers.PlaylistController,
        *ops.routes(settings.protect_ops),
        *admin.routes(faults=settings.fault_injection),
        controllers.events_route(settings.events_max_bytes),
        *playground.routes(),
    ]
    if settings.fault_injection or settings.bench_routes:
        plugins.append(DrillHooks(settings))
    app = EdgeApp(
        route_handlers=handlers,
        lifespan=[lifespan],
        plugins=plugins,
        exception_handlers=HANDLERS,  # type: ignore[arg-type]
        openapi_config=OpenAPIConfig(
            title="Playlist edge",
            version="1",
            path="/schema",
            render_plugins=[SwaggerRenderPlugin()],
            components=Components(
                security_schemes={
                    "ApiKey": SecurityScheme(
                        type="apiKey",
                        name="X-API-Key",
                        security_scheme_in="header",
                        description="Needed when the node has EDGE_API_KEYS_FILE set",
                    )
                }
            ),
            # Without a keys file the node is open, and its schema says so.
            security=[{"ApiKey": []}] if settings.api_keys_file else None,
        ),
        request_max_body_size=settings.max_body_bytes,
        guards=[controllers.api_key_guard],
        state=None,
        after_exception=[_log_unexpected],
    )
    app.state.node = node
    app.node = node
    app.allowed = {
        route.path: ", ".join(sorted(route.methods)).encode()
        for route in app.routes
        # Admin routes keep Litestar's answer, behind their guard.
        if isinstance(route, HTTPRoute)
        and "{" not in route.path
        and not route.path.startswith("/admin")
    }
    return app


async def _log_unexpected(exc: Exception, _scope: Any) -> None:
    """Every exception that becomes a 500 is logged with its stack: a 500 is always a bug."""
    if not isinstance(exc, EdgeError | HTTPException | IntentError):
        log.error("unhandled exception", exc_info=exc)


def app_from_env() -> EdgeApp:
    """Factory for ASGI servers: settings from EDGE_* variables, read when called."""
    return create_app(EdgeSettings.from_env(), signals=True)
