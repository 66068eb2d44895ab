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
import threading
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from litestar import Request, Response, get, post
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.params import JSONBody
from litestar.plugins import InitPluginProtocol

from edge.admin import FAULTS, require_admin
from edge.answers import JSON
from edge.compute import ComputePool
from edge.controllers import no_store
from edge.node import EdgeNode
from edge.pipeline import PlaylistPipeline
from edge.schemas import FaultBody
from edge.settings import EdgeSettings
from models.errors import EncoderError
from models.generator import Timings

log = logging.getLogger("edge.hooks")


HANG_LIMIT = 120.0
"""Seconds an injected encoder hang holds the encoder thread at most."""

Fault = Literal["raise", "hang"]


class FaultyEncoder:
    """A compute pool's encoder that raises or hangs while a fault is set."""

    def __init__(self, encode: Callable[[list[str], Timings], np.ndarray]) -> None:
        self.encode = encode
        self.fault: Fault | None = None
        self._cleared = threading.Event()

    def set(self, fault: Fault | None) -> None:
        self.fault = fault
        if fault is None:
            self._cleared.set()  # a hung call ends now (and fails)
        else:
            self._cleared.clear()

    def release(self) -> None:
        """End any hung call (its pool is closing)."""
        self._cleared.set()

    def __call__(self, texts: list[str], timings: Timings) -> np.ndarray:
        fault = self.fault
        if fault == "hang":
            # Hold the encoder thread as a stuck model would, until the fault is cleared or
            # HANG_LIMIT passes; callers meanwhile give up at their compute timeout.
            self._cleared.wait(HANG_LIMIT)
            raise EncoderError("injected fault: the encoder hung")
        if fault == "raise":
            raise EncoderError("injected fault: the encoder failed")
        return self.encode(texts, timings)


def set_fault(compute: ComputePool, fault: Fault | None) -> None:
    """Make `compute`'s encoder raise or hang until told otherwise (None: work again); a
    hung call ends when the pool closes."""
    encoder = compute.encode
    if not isinstance(encoder, FaultyEncoder):
        encoder = compute.encode = FaultyEncoder(encoder)
        compute.closing.append(encoder.release)
    encoder.set(fault)


@post(FAULTS, include_in_schema=False, status_code=200, before_request=require_admin)
async def admin_faults(state: State, data: JSONBody[FaultBody]) -> Response[bytes]:
    """Make this node's encoder raise or hang until told otherwise (failover drills)."""
    node: EdgeNode = state.node
    set_fault(node.require().compute, data.encoder)
    log.warning("encoder fault set", extra={"fault": data.encoder})
    return no_store({"encoder": data.encoder})


def bench_route() -> Any:
    """GET /_bench/bare: an answer's bytes from a plain dict (each query string's computed
    once by the playlist pipeline), the baseline for a Litestar route."""
    bodies: dict[bytes, bytes] = {}

    @get("/_bench/bare", include_in_schema=False)
    async def bench_bare(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
        pipeline: PlaylistPipeline = state.pipeline
        raw = request.scope["query_string"]
        body = bodies.get(raw)
        if body is None:
            body = bodies[raw] = (await pipeline.get(raw, None)).body
        return Response(body, media_type=JSON)

    return bench_bare


class DrillHooks(InitPluginProtocol):
    """Adds the hooks the settings turn on to the app's routes."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.faults = settings.fault_injection
        self.bench = settings.bench_routes

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        handlers: list[Any] = []
        if self.faults:
            handlers.append(admin_faults)
        if self.bench:
            handlers.append(bench_route())
        app_config.route_handlers.extend(handlers)
        return app_config
