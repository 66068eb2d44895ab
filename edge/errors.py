"""Errors the edge raises on purpose; each maps to one HTTP status in `edge.problems`.

    EdgeError
     ├── BadRequest             400  the request is malformed or asks for nothing possible
     │    ├── UnknownSchemaVersion   400  a POST body names a schema_version we do not speak
     │    └── InvalidEvents          400  events of a batch fail validation (listed by index)
     ├── Unauthorized           401  an admin call without credentials
     │    └── MissingApiKey          401  no or an unknown X-API-Key (`edge.auth`)
     ├── Forbidden              403  an admin call with the wrong key (or admin disabled)
     ├── RequestTimeout         408  the request body did not arrive in time
     ├── Conflict               409
     │    └── VersionConflict        409  a version operation the node's state does not allow
     ├── PayloadTooLarge        413
     ├── UnsupportedMediaType   415
     ├── TooManyRequests        429  over the client's rate limit (Retry-After, RateLimit-*)
     ├── Overloaded             503  the compute bulkhead is full (Retry-After)
     ├── NotReady               503  artifacts not loaded or warm-up not done (Retry-After)
     └── EventLogUnavailable    503  the event log did not take a batch in time (Retry-After)

`models.errors.IntentError` (a prompt or slot that cannot be served) also maps to 400. The
branch belongs to the service's one tree, drawn in `errors`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from errors import PlaylistServiceError


class EdgeError(PlaylistServiceError):
    """Base of the edge's own errors; `status` is the HTTP status it becomes."""

    status = 500
    title = "Internal error"
    retry_after: int | None = None
    headers: Mapping[str, str] = MappingProxyType({})
    """Response headers the problem carries (besides Retry-After)."""
    errors: list[dict[str, str | int]] | None = None
    """Per-item problems of a batch, listed in the response."""


class BadRequest(EdgeError):
    status = 400
    title = "Bad request"


class UnknownSchemaVersion(BadRequest):
    title = "Unknown schema version"


class InvalidEvents(BadRequest):
    title = "Invalid events"

    def __init__(self, detail: str, errors: list[dict[str, str | int]]) -> None:
        super().__init__(detail)
        self.errors = errors


class Unauthorized(EdgeError):
    status = 401
    title = "Unauthorized"
    headers: Mapping[str, str] = MappingProxyType({"www-authenticate": 'Bearer realm="edge-admin"'})


class Forbidden(EdgeError):
    status = 403
    title = "Forbidden"


class Conflict(EdgeError):
    status = 409
    title = "Conflict"


class VersionConflict(Conflict):
    """A version operation (load, promote, roll back) that the node's state does not allow."""


class RequestTimeout(EdgeError):
    status = 408
    title = "Request timeout"
    headers: Mapping[str, str] = MappingProxyType({"connection": "close"})


class PayloadTooLarge(EdgeError):
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(EdgeError):
    status = 415
    title = "Unsupported media type"


class TooManyRequests(EdgeError):
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: int, limit: int, remaining: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.headers = {
            "ratelimit-limit": str(limit),
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": str(retry_after),
        }


class Overloaded(EdgeError):
    """Too many misses are queued for compute; cache hits are still served."""

    status = 503
    title = "Overloaded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotReady(EdgeError):
    status = 503
    title = "Not ready"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EventLogUnavailable(EdgeError):
    """The region's event log did not take a batch in time; the client sends it again."""

    status = 503
    title = "Event log unavailable"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after
