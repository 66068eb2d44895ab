"""Errors raised by what a region shares (its Redis, the event log).

    RegionalError
     └── StoreUnavailable      the region's Redis failed or did not answer in time
          └── LogUnavailable   the event log (Redis Streams or the SQLite file) failed

The modules that talk to Redis or SQLite translate the driver's errors into these with
`raise ... from exc` (`regional.connections.translate_redis_errors`), so callers catch one
class. `regional.connections.RedisURLError` is a configuration error, not a `RegionalError`.
The branch belongs to the service's one tree, drawn in `errors`.
"""

from __future__ import annotations

from errors import PlaylistServiceError


class RegionalError(PlaylistServiceError):
    """Base of every error raised from `regional/`."""


class StoreUnavailable(RegionalError):
    """The region's Redis refused, failed or was late; the caller degrades or retries."""


class LogUnavailable(StoreUnavailable):
    """The event log did not take or hand out entries; the batch is sent or read again."""
