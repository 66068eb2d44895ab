"""HTTP handlers: thin adapters from Litestar to `PlaylistService` and `EdgeNode`."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.dto import MsgspecDTO
from litestar.handlers import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example, Link, OpenAPIResponse, Operation
from litestar.params import FromPath, JSONBody, Parameter
from msgspec import Meta

from edge.answers import JSON
from edge.auth import HEADER
from edge.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    Unauthorized,
    UnknownSchemaVersion,
    UnsupportedMediaType,
)
from edge.events import EventsPipeline
from edge.metrics import CONTENT_TYPE
from edge.node import EdgeNode
from edge.query import MAX_Q_CHARS, check_text
from edge.schemas import (
    SCHEMA_VERSION,
    FaultBody,
    PlaylistBody,
    PlaylistOut,
    PlaylistRequest,
    Problem,
    PurgeBody,
    VersionsBody,
)
from edge.semantic import BucketReport
from edge.service import Answer
from models.errors import ArtifactError
from regional.consumers import LABEL_RULES_VERSION
from regional.events import EventIn

log = logging.getLogger("edge.admin")

METRICS_MEDIA_TYPE = CONTENT_TYPE.split(";")[0]


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(Problem, description=description, media_type="application/problem+json")


_PROBLEMS = {
    400: _problem("Invalid request"),
    401: _problem("No API key, or an unknown one (when the node has keys)"),
    403: _problem("The API key lacks this route's scope"),
    408: _problem("The request body did not arrive in time"),
    413: _problem("Body too large"),
    415: _problem("Not a JSON body"),
    429: _problem("Over the client's rate limit (Retry-After, RateLimit-* headers)"),
    431: ResponseSpec(None, description="Request head over EDGE_MAX_HEADER_BYTES (the server's)"),
    503: _problem("Overloaded or not ready (Retry-After)"),
}
_ANSWERS = {
    200: ResponseSpec(PlaylistOut, description="A playlist"),
    304: ResponseSpec(None, description="Not modified: the If-None-Match ETag still holds"),
    **_PROBLEMS,
}

ListParam = Annotated[list[str] | None, Parameter(description="Repeated or comma-separated")]

EVENTS_OPERATION = "ingestEvents"


@dataclass
class PlaylistOperation(Operation):
    """A playlist operation whose answer links to POST /v1/events, filled in from the answer
    (its prompt_key, fingerprint and first track): the schema tells clients, and stateful
    fuzzing, that events follow a playlist."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if not isinstance(ok, OpenAPIResponse):
            return
        skip = {
            "event_id": "evt-linked-skip",
            "type": "skip",
            "playlist": "$response.body#/fingerprint",
            "prompt_key": "$response.body#/prompt_key",
            "track_id": "$response.body#/tracks/0/id",
            "position": 0,
            "dwell_ms": 1500,
            "ts": "2026-01-01T00:00:00+00:00",
            "user": "listener-1",
        }
        ok.links = {
            "SkipFirstTrack": Link(
                operation_id=EVENTS_OPERATION,
                request_body={"events": [skip]},
                description="Report that the listener skipped the first track",
            )
        }


def _response(answer: Answer) -> Response[bytes]:
    return Response(answer.body, status_code=answer.status, headers=answer.headers, media_type=JSON)


async def _require_json(request: Request[Any, Any, Any]) -> None:
    """Refuse non-JSON media types and bodies that are not UTF-8 before anything decodes them."""
    media, _ = request.content_type
    if media != "application/json" and not media.endswith("+json"):
        raise UnsupportedMediaType(f"send application/json, not {media or 'no content type'}")
    body = await request.body()
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not valid UTF-8 (byte {exc.start})") from None


class PlaylistController(Controller):
    path = "/v1/playlists"
    opt = {"scope": "read"}  # noqa: RUF012 (Litestar reads it as a class attribute)

    @get(
        responses=_ANSWERS,
        operation_class=PlaylistOperation,
        summary="Playlist for a prompt and/or slots (CDN-cacheable)",
    )
    async def get_playlist(
        self,
        request: Request[Any, Any, Any],
        state: State,
        q: Annotated[
            str | None,
            Parameter(
                max_length=MAX_Q_CHARS,
                description="Free-text prompt",
                examples=[Example(value="rainy sunday jazz")],
            ),
        ] = None,
        mood: ListParam = None,
        activity: ListParam = None,
        genre: ListParam = None,
        exclude: Annotated[
            list[str] | None,
            Parameter(description="Genres, moods, 'vocals' or 'explicit' to leave out"),
        ] = None,
        tempo: Annotated[
            str | None,
            Parameter(description="slow, medium, fast, a bpm, or a bpm range like 100-120"),
        ] = None,
        explicit: Annotated[bool | None, Parameter(description="false: clean tracks only")] = None,
        n: Annotated[int | None, Parameter(ge=1, description="Playlist length")] = None,
    ) -> Response[bytes]:
        node: EdgeNode = state.node
        service = node.require()
        raw, if_none_match = request.scope["query_string"], request.headers.get("if-none-match")
        moved = service.redirect(raw)
        if moved is not None:
            return _response(moved)
        if node.versions.percent <= 0:
            return _response(await service.answer_get(raw, if_none_match))
        # A split: the prompt decides the version (a GET names no listener).
        parsed = service.parse_get(raw)
        intent, key = service.intent(parsed)
        chosen = node.route(intent.prompt_key())
        if chosen is not service:
            intent, key = chosen.intent(parsed)
        return _response(await chosen.answer(parsed, intent, key, if_none_match))

    @post(
        responses=_ANSWERS,
        status_code=200,
        before_request=_require_json,
        operation_class=PlaylistOperation,
        summary="Playlist from a JSON body; with `user`, personalised and private",
    )
    async def post_playlist(
        self, request: Request[Any, Any, Any], state: State, data: JSONBody[PlaylistBody]
    ) -> Response[bytes]:
        node: EdgeNode = state.node
        if data.schema_version != SCHEMA_VERSION:
            raise UnknownSchemaVersion(
                f"schema_version {data.schema_version} is not supported; this node speaks "
                f"{SCHEMA_VERSION}"
            )
        service = node.require()
        playlist_request = PlaylistRequest(
            prompt=check_text(data.prompt, "prompt"),
            slots=data.slots.to_slots() if data.slots is not None else None,
            n=data.n if data.n is not None else node.settings.default_length,
            user=data.user,
        )
        intent, key = service.intent(playlist_request)
        chosen = node.route(data.user or intent.prompt_key())  # the listener, else the prompt
        if chosen is not service:
            intent, key = chosen.intent(playlist_request)
        answer = await chosen.answer(
            playlist_request, intent, key, request.headers.get("if-none-match")
        )
        return _response(answer)


async def api_key_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """The route's scope (`opt["scope"]`) against the caller's X-API-Key. Health and metrics
    (scope "ops") need an admin key only when EDGE_PROTECT_OPS is on.

    A coroutine although it never awaits: Litestar runs a plain function guard on a worker
    thread, a thread hop on every request."""
    scope = handler.opt.get("scope")
    if scope is None:
        return
    node: EdgeNode = connection.app.state.node
    if scope == "ops":
        if not node.settings.protect_ops:
            return
        scope = "admin"
    key = node.auth.require(connection.headers.get(HEADER), scope)
    if key is not None:
        connection.scope["state"]["api_key"] = key  # the client's identity, for rate limits


async def _require_admin(request: Request[Any, Any, Any]) -> None:
    """Credentials first (401 without, 403 wrong), then the body checks of every JSON route."""
    await _require_admin_key(request)
    await _require_json(request)


async def _require_admin_key(request: Request[Any, Any, Any]) -> None:
    node: EdgeNode = request.app.state.node
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the admin key as Authorization: Bearer <key>")
    expected = node.settings.admin_key
    if not expected:
        raise Forbidden("the admin API is disabled on this node (EDGE_ADMIN_KEY is not set)")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("wrong admin key")


@post("/admin/purge", include_in_schema=False, status_code=200, before_request=_require_admin)
async def admin_purge(state: State, data: JSONBody[PurgeBody]) -> Response[bytes]:
    """Drop entries by cache key, tag or track id here, in L2 and the global store, on
    every edge of the region (their L1, through the invalidation bus) and in the shared
    caches of EDGE_CDN_PURGE_URLS; `soft` marks them stale instead."""
    node: EdgeNode = state.node
    # A key also names its semantic aliases, which carry it as a k: tag.
    tags = tuple(
        dict.fromkeys(
            [*data.tags, *(f"t:{track}" for track in data.tracks), *(f"k:{k}" for k in data.keys)]
        )
    )
    if not (data.keys or tags):
        raise BadRequest("name at least one of keys, tags or tracks")
    for item in (*data.keys, *tags):
        if any(char.isspace() for char in check_text(item, "purge item")):
            raise BadRequest(f"purge item {item[:40]!r} contains whitespace")
    result = await node.require().purge(tuple(data.keys), tags, soft=data.soft)
    if node.cdn is not None:
        result["cdn"] = await node.cdn.purge(tags, soft=data.soft)
    return Response(
        msgspec.json.encode(result), media_type=JSON, headers={"cache-control": "no-store"}
    )


@post("/admin/faults", include_in_schema=False, status_code=200, before_request=_require_admin)
async def admin_faults(state: State, data: JSONBody[FaultBody]) -> Response[bytes]:
    """Make this node's encoder raise or hang until told otherwise (failover drills); only
    with EDGE_FAULT_INJECTION on."""
    node: EdgeNode = state.node
    if not node.settings.fault_injection:
        raise Forbidden("fault injection is off on this node (EDGE_FAULT_INJECTION)")
    service = node.require()
    service.compute.set_encoder_fault(data.encoder)
    log.warning("encoder fault set", extra={"fault": data.encoder})
    return Response(
        msgspec.json.encode({"encoder": data.encoder}),
        media_type=JSON,
        headers={"cache-control": "no-store"},
    )


@get("/admin/versions", include_in_schema=False, before_request=_require_admin_key)
async def admin_versions(state: State) -> Response[bytes]:
    """The served version, the candidate (and its loading state) and its share."""
    node: EdgeNode = state.node
    return _no_store(node.versions.describe(node.service))


@post("/admin/versions", include_in_schema=False, status_code=200, before_request=_require_admin)
async def admin_versions_change(state: State, data: JSONBody[VersionsBody]) -> Response[bytes]:
    """Load a candidate version (in the background: poll GET /admin/versions), give it a
    share of traffic, promote it, roll back, or unload it."""
    node: EdgeNode = state.node
    versions = node.versions
    try:
        if data.action == "load":
            if data.artifacts is None:
                raise BadRequest("load needs the candidate's artifacts folder")
            node.load_candidate(Path(data.artifacts))
        elif data.action == "split":
            if data.percent is None:
                raise BadRequest("split needs a percent")
            if versions.candidate is None:
                raise Conflict("no candidate version is ready to take traffic")
            versions.percent = data.percent
            versions.experiment = data.experiment or versions.experiment
            log.warning("traffic split", extra=versions.describe(node.service))
        elif data.action == "shadow":
            if data.ratio is None:
                raise BadRequest("shadow needs a ratio")
            if versions.candidate is None:
                raise Conflict("no candidate version to compare with")
            versions.shadow = data.ratio
        elif data.action == "promote":
            node.promote()
        elif data.action == "rollback":
            node.rollback()
        else:
            await node.unload()
    except ArtifactError as exc:  # the folder named is not an artifact version
        raise BadRequest(str(exc)) from exc
    return _no_store(versions.describe(node.service))


def _no_store(doc: object) -> Response[bytes]:
    return Response(
        msgspec.json.encode(doc), media_type=JSON, headers={"cache-control": "no-store"}
    )


def _events(state: State) -> EventsPipeline:
    """The node's event pipeline once it is ready; 403 on a node with events off."""
    node: EdgeNode = state.node
    node.require()
    if node.events is None:
        raise Forbidden("events are off on this node (EDGE_EVENTS_URL=none)")
    return node.events


@get("/admin/labels/{prompt_key:str}", include_in_schema=False, before_request=_require_admin_key)
async def admin_labels(state: State, prompt_key: FromPath[str]) -> Response[bytes]:
    """The region's prompt-quality labels for one prompt key (rules version included)."""
    counts = await _events(state).labels.get(check_text(prompt_key, "prompt key"))
    doc = {
        "prompt_key": prompt_key,
        "rules": LABEL_RULES_VERSION,
        "accept": counts.accept,
        "reject": counts.reject,
        "mostly_rejected": counts.mostly_rejected(),
    }
    return Response(
        msgspec.json.encode(doc), media_type=JSON, headers={"cache-control": "no-store"}
    )


class EventsAccepted(msgspec.Struct, frozen=True):
    accepted: int
    """Events stored now."""
    duplicates: int
    """Events whose event_id was already stored (within the dedupe window): accepted once."""
    ids: list[str | None]
    """Per event, in order: its id in the region's log, or null for a duplicate."""


class EventBatch(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /v1/events, as documented in the OpenAPI schema."""

    events: Annotated[list[EventIn], Meta(min_length=1)]


class _RawEventBatch(MsgspecDTO[EventBatch]):
    """Documents the body as an `EventBatch` but hands the handler its raw bytes: the events
    pipeline validates each event itself, so that a bad batch is refused whole with every
    bad event listed by index (a decode into `EventBatch` would stop at the first)."""

    def decode_bytes(self, value: bytes) -> Any:
        return value


async def ingest_events(data: JSONBody[EventBatch], state: State) -> Response[bytes]:
    """Store a batch of listener events (play, skip, complete, save, thumb_up, thumb_down).

    Body: `{"events": [{"event_id", "type", "playlist", "prompt_key", "track_id",
    "position", "dwell_ms", "ts", "user", "prompt"?}, ...]}`. All or nothing: one invalid
    event rejects the batch with a 400 listing every bad event by index. Re-sending is safe:
    an event_id already stored is counted as a duplicate, not stored again.
    """
    body = cast(bytes, data)  # the raw body, as `_RawEventBatch` hands it over
    result = await _events(state).ingest(body)
    return Response(
        msgspec.json.encode(result), media_type=JSON, headers={"cache-control": "no-store"}
    )


def events_route(max_bytes: int) -> Any:
    """POST /v1/events with its own body limit (batches are larger than playlist requests)."""
    return post(
        "/v1/events",
        status_code=200,
        before_request=_require_json,
        request_max_body_size=max_bytes,
        dto=_RawEventBatch,
        return_dto=None,
        operation_id=EVENTS_OPERATION,
        summary="Ingest a batch of listener events",
        opt={"scope": "events"},
        responses={200: ResponseSpec(EventsAccepted, description="Stored"), **_PROBLEMS},
    )(ingest_events)


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
    return Response(
        msgspec.json.encode(doc),
        status_code=200 if ready else 503,
        media_type=JSON,
        headers={"cache-control": "no-store"},
    )


async def metrics(state: State) -> Response[bytes]:
    node: EdgeNode = state.node
    return Response(
        node.metrics.render(), media_type=CONTENT_TYPE, headers={"cache-control": "no-store"}
    )


def ops_routes(protected: bool) -> list[Any]:
    """/healthz, /readyz and /metrics: open (and documented so) unless `protected`, when
    they need an admin-scope key like the rest of the node's keys."""
    security: Any = None if protected else [{}]
    auth = {401: _PROBLEMS[401], 403: _PROBLEMS[403]} if protected else {}
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


@get("/_bench/bare", include_in_schema=False)
async def bench_bare(request: Request[Any, Any, Any], state: State) -> Response[bytes]:
    """The answer's bytes from a plain dict: the benchmark's baseline for a Litestar route."""
    node: EdgeNode = state.node
    raw = request.scope["query_string"]
    body = node.bench_bodies.get(raw)
    if body is None:
        body = node.bench_bodies[raw] = (await node.require().answer_get(raw, None)).body
    return Response(body, media_type=JSON)
