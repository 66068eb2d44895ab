"""The edge's ASGI middleware, composed once (`compose`) in this order, outermost first:

    Timing → RateLimit → Options → FastGet → BodyDeadline → Litestar (routing, guards, handlers)

- `Timing`: per-route request metrics, served bytes and the access log, for every request.
- `RateLimit`: per-client limits on /v1/ (429 with Retry-After and RateLimit-* headers),
  before anything else is spent on the request, cached answers included.
- `Options`: OPTIONS on a fixed path answers with every method the path has (Litestar's own
  answer keeps only the methods of the route's first handler).
- `FastGet`: GET /v1/playlists without Litestar's routing: the playlist pipeline's fresh L1
  hit or redirect at the cost of a dict lookup, else its full path; a bad query is parsed
  once and answered with the problem Litestar's handler would send (both read the query
  with `edge.query`). Callers without a good key, and all but fresh hits while tracing is
  on (traced under the server span), take Litestar's way.
- `BodyDeadline`: a request body must arrive within EDGE_BODY_TIMEOUT or the request ends
  in 408, so a slow client holds no worker for long.

Problems are rendered by `edge.problems.problem`, the function Litestar's exception
handlers use, so every way out of the node speaks the same problem documents.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from edge import problems, telemetry
from edge.errors import EdgeError, RequestTimeout, TooManyRequests
from edge.node import EdgeNode
from edge.pipeline import PlaylistPipeline
from models.errors import IntentError

log = logging.getLogger("edge.access")

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

ROUTES = frozenset(
    {"/v1/playlists", "/v1/events", "/healthz", "/readyz", "/metrics", "/_bench/bare"}
)
PLAYLISTS = "/v1/playlists"
_JSON = b"application/json"
_PROBLEM_JSON = problems.PROBLEM_JSON.encode()


def compose(
    inner: ASGIApp, node: EdgeNode, pipeline: PlaylistPipeline, allowed: dict[str, bytes]
) -> ASGIApp:
    """The node's HTTP chain around `inner` (Litestar)."""
    app: ASGIApp = BodyDeadline(inner, node)
    app = FastGet(app, node, pipeline)
    app = Options(app, allowed)
    app = RateLimit(app, node)
    return Timing(app, node)


async def send_answer(
    send: Any, status: int, fields: dict[str, str], body: bytes, content_type: bytes = _JSON
) -> None:
    headers = [(k.encode(), v.encode()) for k, v in fields.items()]
    if status != 304:  # a 304 has no body: no type, no length (RFC 9110 §15.4.5)
        headers += [(b"content-type", content_type), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_problem(send: Any, exc: Exception, path: str) -> None:
    status, headers, body = problems.problem(exc, path)
    await send_answer(send, status, headers, body, _PROBLEM_JSON)


def header(scope: Any, wanted: bytes) -> str | None:
    for name, value in scope["headers"]:
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


class Timing:
    """Request metrics (route, status, tier, seconds), served bytes and the access log."""

    def __init__(self, app: ASGIApp, node: EdgeNode) -> None:
        self.app = app
        self.metrics = node.metrics
        self.access_log = node.settings.access_log

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start = time.perf_counter()
        path = scope["path"]
        route = path if path in ROUTES else ("/schema" if path.startswith("/schema") else "other")
        status = 500  # until something is sent: an unexpected error propagates
        tier: str | None = None
        served = self.metrics.served

        async def observed(message: Any) -> None:
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
            await self.app(scope, receive, observed)
        finally:
            seconds = time.perf_counter() - start
            self.metrics.request(route, status, seconds, tier)
            if self.access_log:
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


class RateLimit:
    """Refuses a client over its limit on /v1/ with a 429 problem."""

    def __init__(self, app: ASGIApp, node: EdgeNode) -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        limiter = self.node.limiter
        if limiter is None or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        key = self.node.auth.lookup(headers.get("x-api-key"))
        peer = scope["client"][0] if scope.get("client") else None
        identity, item = limiter.client(key, headers, peer)
        verdict = await limiter.hit(identity, item)
        if verdict.allowed:
            await self.app(scope, receive, send)
            return
        self.node.metrics.rejections.labels("rate-limit").inc()
        refused = TooManyRequests(
            f"over the limit of {item}; try again in {verdict.reset_seconds} s",
            retry_after=verdict.reset_seconds,
            limit=verdict.limit,
            remaining=max(0, verdict.remaining),
        )
        await send_problem(send, refused, scope["path"])


class Options:
    """OPTIONS on a fixed path: 204 with the path's every method."""

    def __init__(self, app: ASGIApp, allowed: dict[str, bytes]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope["path"]
        if scope["method"] != "OPTIONS" or path not in self.allowed:
            await self.app(scope, receive, send)
            return
        headers = [(b"allow", self.allowed[path]), (b"cache-control", b"no-store")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class FastGet:
    """GET /v1/playlists straight to the playlist pipeline."""

    def __init__(self, app: ASGIApp, node: EdgeNode, pipeline: PlaylistPipeline) -> None:
        self.app = app
        self.node = node
        self.pipeline = pipeline

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        node = self.node
        if scope["path"] != PLAYLISTS or scope["method"] != "GET" or not node.lean_path:
            await self.app(scope, receive, send)
            return
        # A caller without a good key takes the routed way, whose guard answers 401 or 403
        # (and records the key for rate limits); an open node does not look for one.
        auth = node.auth
        if node.service is None or not (
            auth.open or auth.allows(header(scope, b"x-api-key"), "read")
        ):
            await self.app(scope, receive, send)
            return
        raw, if_none_match = scope["query_string"], header(scope, b"if-none-match")
        # With tracing on, all but fresh hits go Litestar's way, traced under the server span.
        tracing = node.tracer is not telemetry.NO_TRACER
        try:
            answer = self.pipeline.cached(raw, if_none_match)
            if answer is None:
                if tracing:
                    await self.app(scope, receive, send)
                    return
                answer = await self.pipeline.respond(self.pipeline.prepare(raw), if_none_match)
        except (EdgeError, IntentError) as exc:  # a bad query, overload, no model
            if tracing:
                await self.app(scope, receive, send)
            else:
                await send_problem(send, exc, scope["path"])
            return
        await send_answer(send, answer.status, answer.headers, answer.body)


class BodyDeadline:
    """`receive`, bounded: the whole body must arrive within `body_timeout` seconds of the
    request's start, or the request ends in 408. Once the body is in, messages pass through
    unbounded."""

    def __init__(self, app: ASGIApp, node: EdgeNode) -> None:
        self.app = app
        self.timeout = node.settings.body_timeout

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        timeout = self.timeout
        deadline = asyncio.get_running_loop().time() + timeout
        done = False

        async def bounded() -> Any:
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

        await self.app(scope, bounded, send)
