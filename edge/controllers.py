"""HTTP handlers: thin adapters from Litestar to `PlaylistService` and `EdgeNode`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated, Any, cast

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.dto import MsgspecDTO
from litestar.handlers import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Link, OpenAPIResponse, Operation
from litestar.params import JSONBody
from msgspec import Meta

from edge.answers import JSON, Answer
from edge.auth import HEADER
from edge.errors import (
    BadRequest,
    Forbidden,
    UnknownSchemaVersion,
    UnsupportedMediaType,
)
from edge.events import EventsPipeline
from edge.node import EdgeNode
from edge.pipeline import PlaylistPipeline
from edge.query import OPENAPI as QUERY_PARAMETERS
from edge.query import check_text
from edge.schemas import (
    SCHEMA_VERSION,
    PlaylistBody,
    PlaylistOut,
    PlaylistRequest,
    Problem,
)
from regional.events import EventIn

log = logging.getLogger("edge.admin")


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(Problem, description=description, media_type="application/problem+json")


PROBLEMS = {
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
    **PROBLEMS,
}


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


@dataclass
class PlaylistQueryOperation(PlaylistOperation):
    """GET /v1/playlists: its query parameters are documented from `edge.query.OPENAPI`,
    the parser's own contract (the handler declares none, so nothing else validates)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.parameters = list(QUERY_PARAMETERS)


def no_store(doc: object, status: int = 200) -> Response[bytes]:
    """A JSON document nobody may cache (admin, events, readiness)."""
    return Response(
        msgspec.json.encode(doc),
        status_code=status,
        media_type=JSON,
        headers={"cache-control": "no-store"},
    )


def _response(answer: Answer) -> Response[bytes]:
    return Response(answer.body, status_code=answer.status, headers=answer.headers, media_type=JSON)


async def require_json(request: Request[Any, Any, Any]) -> None:
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
        operation_class=PlaylistQueryOperation,
        summary="Playlist for a prompt and/or slots (CDN-cacheable)",
    )
    async def get_playlist(self, request: Request[Any, Any, Any], state: State) -> Response[bytes]:
        pipeline: PlaylistPipeline = state.pipeline
        raw = request.scope["query_string"]
        return _response(await pipeline.get(raw, request.headers.get("if-none-match")))

    @post(
        responses=_ANSWERS,
        status_code=200,
        before_request=require_json,
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
        node.require()
        playlist_request = PlaylistRequest(
            prompt=check_text(data.prompt, "prompt"),
            slots=data.slots.to_slots() if data.slots is not None else None,
            n=data.n if data.n is not None else node.settings.default_length,
            user=data.user,
        )
        pipeline: PlaylistPipeline = state.pipeline
        answer = await pipeline.answer(
            playlist_request, data.user, request.headers.get("if-none-match")
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


def events_of(state: State) -> EventsPipeline:
    """The node's event pipeline once it is ready; 403 on a node with events off."""
    node: EdgeNode = state.node
    node.require()
    if node.events is None:
        raise Forbidden("events are off on this node (EDGE_EVENTS_URL=none)")
    return node.events


async def ingest_events(data: JSONBody[EventBatch], state: State) -> Response[bytes]:
    """Store a batch of listener events (play, skip, complete, save, thumb_up, thumb_down).

    Body: `{"events": [{"event_id", "type", "playlist", "prompt_key", "track_id",
    "position", "dwell_ms", "ts", "user", "prompt"?}, ...]}`. All or nothing: one invalid
    event rejects the batch with a 400 listing every bad event by index. Re-sending is safe:
    an event_id already stored is counted as a duplicate, not stored again.
    """
    body = cast(bytes, data)  # the raw body, as `_RawEventBatch` hands it over
    return no_store(await events_of(state).ingest(body))


def events_route(max_bytes: int) -> Any:
    """POST /v1/events with its own body limit (batches are larger than playlist requests)."""
    return post(
        "/v1/events",
        status_code=200,
        before_request=require_json,
        request_max_body_size=max_bytes,
        dto=_RawEventBatch,
        return_dto=None,
        operation_id=EVENTS_OPERATION,
        summary="Ingest a batch of listener events",
        opt={"scope": "events"},
        responses={200: ResponseSpec(EventsAccepted, description="Stored"), **PROBLEMS},
    )(ingest_events)
