"""The admin API (`Authorization: Bearer EDGE_ADMIN_KEY`, left out of the schema): purges,
artifact versions, and the region's prompt labels."""

from __future__ import annotations

import hmac
import logging
from pathlib import Path
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody

from edge.controllers import events_of, no_store, require_json
from edge.errors import BadRequest, Conflict, Forbidden, Unauthorized
from edge.node import EdgeNode
from edge.query import check_text
from edge.schemas import FaultBody, PurgeBody, VersionsBody
from models.errors import ArtifactError
from regional.consumers import LABEL_RULES_VERSION

log = logging.getLogger("edge.admin")


async def require_admin(request: Request[Any, Any, Any]) -> None:
    """Credentials first (401 without, 403 wrong), then the body checks of every JSON route."""
    await require_admin_key(request)
    await require_json(request)


async def require_admin_key(request: Request[Any, Any, Any]) -> None:
    node: EdgeNode = request.app.state.node
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the admin key as Authorization: Bearer <key>")
    expected = node.settings.admin_key
    if not expected:
        raise Forbidden("the admin API is disabled on this node (EDGE_ADMIN_KEY is not set)")
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("wrong admin key")


@post("/admin/purge", include_in_schema=False, status_code=200, before_request=require_admin)
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
    return no_store(result)


@get("/admin/versions", include_in_schema=False, before_request=require_admin_key)
async def admin_versions(state: State) -> Response[bytes]:
    """The served version, the candidate (and its loading state) and its share."""
    node: EdgeNode = state.node
    return no_store(node.versions.describe())


@post("/admin/versions", include_in_schema=False, status_code=200, before_request=require_admin)
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
            log.warning("traffic split", extra=versions.describe())
        elif data.action == "shadow":
            if data.ratio is None:
                raise BadRequest("shadow needs a ratio")
            if versions.candidate is None:
                raise Conflict("no candidate version to compare with")
            versions.shadow = data.ratio
        elif data.action == "promote":
            versions.promote()
        elif data.action == "rollback":
            versions.rollback()
        else:
            await versions.unload()
    except ArtifactError as exc:  # the folder named is not an artifact version
        raise BadRequest(str(exc)) from exc
    return no_store(versions.describe())


@get("/admin/labels/{prompt_key:str}", include_in_schema=False, before_request=require_admin_key)
async def admin_labels(state: State, prompt_key: FromPath[str]) -> Response[bytes]:
    """The region's prompt-quality labels for one prompt key (rules version included)."""
    counts = await events_of(state).labels.get(check_text(prompt_key, "prompt key"))
    doc = {
        "prompt_key": prompt_key,
        "rules": LABEL_RULES_VERSION,
        "accept": counts.accept,
        "reject": counts.reject,
        "mostly_rejected": counts.mostly_rejected(),
    }
    return no_store(doc)


FAULTS = "/admin/faults"


@post(FAULTS, include_in_schema=False, status_code=200, before_request=require_admin)
async def faults_off(data: JSONBody[FaultBody]) -> Response[bytes]:
    """Stands in for `edge.hooks`' fault route on a node without EDGE_FAULT_INJECTION."""
    raise Forbidden("fault injection is off on this node (EDGE_FAULT_INJECTION)")


def routes(*, faults: bool) -> list[Any]:
    """The admin routes; `faults`: the hooks plugin serves /admin/faults."""
    return [
        admin_purge,
        admin_labels,
        admin_versions,
        admin_versions_change,
        *([] if faults else [faults_off]),
    ]
