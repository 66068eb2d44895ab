"""Errors raised by cache tiers.

    CacheError
     └── TierUnavailable   a tier could not be reached in time; callers count it as a miss

Tiers translate their clients' errors (connection refused, timeouts, bad replies) into
`TierUnavailable` with `raise ... from exc`, so nothing above `cache/` sees a driver error.
The branch belongs to the service's one tree, drawn in `errors`.
"""

from errors import PlaylistServiceError


class CacheError(PlaylistServiceError):
    """Base of every error raised from `cache/`."""


class TierUnavailable(CacheError):
    """A tier is down or too slow; the read is a miss and the write is skipped."""
