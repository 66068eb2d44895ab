"""One exception handler: the project's errors and Litestar's HTTP errors → problem+json.

RFC 9457 documents with a `type` URI per kind of problem, the status, a title and a detail
that says what was wrong. Only known exception classes are mapped; anything else is a bug
and stays a 500.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from edge.errors import EdgeError
from edge.schemas import Problem
from models.errors import IntentError

PROBLEM_JSON = "application/problem+json"


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _validation_detail(exc: ValidationException) -> str:
    parts = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if isinstance(item, dict):
            where = item.get("key") or item.get("source") or ""
            parts.append(f"{where}: {item.get('message', '')}".strip(": "))
    return "; ".join(parts) or str(exc.detail)


def problem_response(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Map EdgeError, IntentError and Litestar HTTPException to a problem+json response."""
    status, headers, body = problem(exc, request.url.path)
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem(exc: Exception, path: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (content type aside) and problem+json body for one of the mapped
    exceptions; shared by the handler above and the app's pre-routing path."""
    headers: dict[str, str] = {}
    errors = None
    if isinstance(exc, EdgeError):
        errors = exc.errors
        status, title, detail = exc.status, exc.title, str(exc)
        headers.update(exc.headers)
        if exc.retry_after is not None:
            headers["retry-after"] = str(exc.retry_after)
    elif isinstance(exc, IntentError):
        status, title, detail = 400, "Bad request", str(exc)
    elif isinstance(exc, ValidationException):
        status, title, detail = exc.status_code, "Invalid request", _validation_detail(exc)
    elif isinstance(exc, HTTPException):
        status, title, detail = exc.status_code, _title(exc.status_code), str(exc.detail)
        headers.update(exc.headers or {})
    else:  # registered only for the classes above
        raise exc
    document = Problem(
        type=f"/problems/{_slug(title)}",
        title=title,
        status=status,
        detail=detail,
        instance=path,
        errors=errors,
    )
    return status, {"cache-control": "no-store", **headers}, msgspec.json.encode(document)


def _title(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


HANDLERS = {
    EdgeError: problem_response,
    IntentError: problem_response,
    HTTPException: problem_response,
}
