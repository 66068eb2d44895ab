"""Drill and benchmark hooks, kept out of the request path's modules: a Litestar plugin that
`create_app` loads only when the settings ask for it.

- EDGE_FAULT_INJECTION: `POST /admin/faults` makes this node's encoder raise or hang until
  told otherwise (failover drills, `loadtest.drills`). Without it the admin API's stand-in
  answers 403 and names the setting, so a drill against an unprepared node learns why.
- EDGE_BENCH_ROUTES: `GET /_bench/bare` returns an answer's bytes from a plain dict, the
  Litestar-route baseline of `loadtest.bench http`.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.plugins import InitPluginProtocol

from edge.admin import FAULTS, require_admin
from edge.answers import JSON
from edge.node import EdgeNode
from edge.schemas import FaultBody
from edge.settings import EdgeSettings

log = logging.getLogger("edge.hooks")


@post(FAULTS, include_in_schema=False, status_code=200, before_request=require_admin)
async def admin_faults(state: State, data: JSONBody[FaultBody]) -> Response[bytes]:
    """Make this node's encoder raise or hang until told otherwise (failover drills)."""
    node: EdgeNode = state.node
    node.require().compute.set_encoder_fault(data.encoder)
    log.warning("encoder fault set", extra={"fault": data.encoder})
    return Response(
        msgspec.json.encode({"encoder": data.encoder}),
        media_type=JSON,
        headers={"cache-control": "no-store"},
    )


class BenchBodies:
    """/_bench/bare's answers, computed once per query string by the real path."""

    def __init__(self) -> None:
        self.bodies: dict[bytes, bytes] = {}

    def route(self) -> Any:
        bodies = self.bodies

        @get("/_bench/bare", include_in_schema=False)
        async def bench_bare(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
            """The answer's bytes from a plain dict: the baseline for a Litestar route."""
            node: EdgeNode = state.node
            raw = request.scope["query_string"]
            body = bodies.get(raw)
            if body is None:
                body = bodies[raw] = (await node.require().answer_get(raw, None)).body
            return Response(body, media_type=JSON)

        return bench_bare


class DrillHooks(InitPluginProtocol):
    """Adds the hooks the settings turn on to the app's routes."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.faults = settings.fault_injection
        self.bench = settings.bench_routes

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        handlers: list[Any] = [admin_faults] if self.faults else []
        if self.bench:
            handlers.append(BenchBodies().route())
        app_config.route_handlers.extend(handlers)
        return app_config
