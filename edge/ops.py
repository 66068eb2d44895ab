"""Operators' routes: /healthz, /readyz (with tiers, compute and semantic buckets) and
/metrics (Prometheus)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar import Response, get
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec

from edge.answers import JSON
from edge.controllers import PROBLEMS, no_store
from edge.metrics import CONTENT_TYPE
from edge.node import EdgeNode
from edge.semantic import BucketReport

METRICS_MEDIA_TYPE = CONTENT_TYPE.split(";")[0]


class Alive(msgspec.Struct, frozen=True):
    status: Literal["alive"]


class Readiness(msgspec.Struct, frozen=True):
    """The /readyz document."""

    status: Literal["loading", "ready", "failed"]
    error: str | None = None
    version: str | None = None
    tiers: dict[str, str] | None = None
    """Each cache tier's state: ok, degraded (circuit half-open) or down."""
    compute: dict[str, int | str] | None = None
    semantic: dict[str, BucketReport] | None = None
    """Per bucket of semantic hits: threshold (1.0: never served), verified hits, wrong hits,
    verified near misses and the false-hit rate's upper bound."""


async def healthz() -> Response[bytes]:
    return Response(b'{"status":"alive"}', media_type=JSON, headers={"cache-control": "no-store"})


async def readyz(state: State) -> Response[bytes]:
    node: EdgeNode = state.node
    ready, doc = await node.readiness()
    return no_store(doc, 200 if ready else 503)


async def metrics(state: State) -> Response[bytes]:
    node: EdgeNode = state.node
    return Response(
        node.metrics.render(), media_type=CONTENT_TYPE, headers={"cache-control": "no-store"}
    )


def routes(protected: bool) -> list[Any]:
    """/healthz, /readyz and /metrics: open (and documented so) unless `protected`, when
    they need an admin-scope key like the rest of the node's keys."""
    security: Any = None if protected else [{}]
    auth = {401: PROBLEMS[401], 403: PROBLEMS[403]} if protected else {}
    return [
        get(
            "/healthz",
            summary="The process is alive",
            opt={"scope": "ops"},
            security=security,
            responses={200: ResponseSpec(Alive, description="Alive"), **auth},
        )(healthz),
        get(
            "/readyz",
            summary="Artifacts loaded and verified, warm-up done; state of each tier (503 until)",
            opt={"scope": "ops"},
            security=security,
            responses={
                200: ResponseSpec(Readiness, description="Ready"),
                503: ResponseSpec(Readiness, description="Loading, or failed to load"),
                **auth,
            },
        )(readyz),
        get(
            "/metrics",
            summary="Prometheus metrics of this process",
            opt={"scope": "ops"},
            security=security,
            responses={
                200: ResponseSpec(
                    str, description="Prometheus text format", media_type=METRICS_MEDIA_TYPE
                ),
                **auth,
            },
        )(metrics),
    ]
