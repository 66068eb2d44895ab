"""`create_app(settings)`: the Litestar application of an edge node.

Every HTTP request passes the middleware chain of `edge.middleware` (timing, rate limit,
OPTIONS, the fast GET, the body deadline) before Litestar routes it; playlist requests,
by either way, are answered by one `edge.pipeline.PlaylistPipeline`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin
from litestar.routes import HTTPRoute
from opentelemetry.sdk.trace import TracerProvider

from edge import admin, controllers, logs, middleware, ops, playground, telemetry
from edge.errors import EdgeError
from edge.hooks import DrillHooks
from edge.middleware import ASGIApp
from edge.node import EdgeNode
from edge.pipeline import PlaylistPipeline
from edge.problems import HANDLERS
from edge.settings import EdgeSettings
from models.artifacts import Artifacts
from models.errors import IntentError

log = logging.getLogger("edge.access")


class EdgeApp(Litestar):
    """Litestar behind the edge's middleware chain (`edge.middleware.compose`)."""

    node: EdgeNode
    allowed: dict[str, bytes]
    """The Allow header of each fixed path."""
    chain: ASGIApp

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await self.chain(scope, receive, send)

    async def routed(self, scope: Any, receive: Any, send: Any) -> None:
        """Litestar's own handling: routing, guards, handlers, exception handlers."""
        await super().__call__(scope, receive, send)


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
    tracing = tracer_provider or telemetry.provider(settings)
    node = EdgeNode(
        settings,
        artifacts=artifacts,
        clock=clock,
        tracer=telemetry.tracer(tracing),
        lean_path=lean_path,
    )
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
    pipeline = PlaylistPipeline(node)
    app.state.node = node
    app.state.pipeline = pipeline
    app.node = node
    app.allowed = {
        route.path: ", ".join(sorted(route.methods)).encode()
        for route in app.routes
        # Admin routes keep Litestar's answer, behind their guard.
        if isinstance(route, HTTPRoute)
        and "{" not in route.path
        and not route.path.startswith("/admin")
    }
    app.chain = middleware.compose(app.routed, node, pipeline, app.allowed)
    return app


async def _log_unexpected(exc: Exception, _scope: Any) -> None:
    """Every exception that becomes a 500 is logged with its stack: a 500 is always a bug."""
    if not isinstance(exc, EdgeError | HTTPException | IntentError):
        log.error("unhandled exception", exc_info=exc)


def app_from_env() -> EdgeApp:
    """Factory for ASGI servers: settings from EDGE_* variables, read when called."""
    return create_app(EdgeSettings.from_env(), signals=True)
