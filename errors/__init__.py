"""The service's one exception tree (the client SDK in `client/` keeps its own).

Every error the service raises on purpose derives from `PlaylistServiceError`. Each package
defines its branch beside its code and imports only this module, so `models/` and `cache/`
stay free of each other and of `edge/`. The status is what `edge.problems`, the one place
that maps errors to HTTP, answers with; "-" marks errors their callers handle (a miss, a
degraded answer, a retry, a refused start): one that reaches the handler anyway is a bug and
stays a plain 500.

    PlaylistServiceError                          -
     ├── ConfigurationError (ValueError)          -   a setting the service cannot use (startup)
     │    └── RedisURLError                       -   a Redis URL of no supported form
     ├── ModelError                               -   models.errors: the inference core
     │    ├── ArtifactError                       -   an artifact folder missing or corrupt
     │    ├── CatalogError                        -   a catalog cannot be read (the build)
     │    ├── CorpusError                         -   a playlist corpus cannot be read
     │    ├── EncoderError                        -   the prompt encoder failed (the fallback)
     │    │    └── ParityError                    -   int8 drifted too far from fp32
     │    ├── IndexError_                         -   the track index failed (the fallback)
     │    └── IntentError                        400  a prompt or slots that cannot be served
     ├── CacheError                               -   cache.errors: the tiers
     │    └── TierUnavailable                     -   a tier down or late: a miss
     ├── RegionalError                            -   regional.errors: what a region shares
     │    └── StoreUnavailable                    -   the region's Redis failed or was late
     │         └── LogUnavailable                 -   the event log (Redis or SQLite) failed
     └── EdgeError                               500  edge.errors: the edge's own refusals
          ├── ComputeFailed                       -   edge.miss: a miss failed or was late (stale)
          ├── BadRequest                         400
          │    ├── UnknownSchemaVersion          400
          │    └── InvalidEvents                 400
          ├── Unauthorized                       401
          │    └── MissingApiKey                 401  no or an unknown X-API-Key (edge.auth)
          ├── Forbidden                          403
          ├── RequestTimeout                     408
          ├── Conflict                           409
          │    └── VersionConflict               409  a version operation the node refuses
          ├── PayloadTooLarge                    413
          ├── UnsupportedMediaType               415
          ├── TooManyRequests                    429  over a client's rate limit
          ├── Overloaded                         503  the compute bulkhead is full
          ├── NotReady                           503  artifacts not loaded or warm yet
          └── EventLogUnavailable                503  a LogUnavailable met by POST /v1/events

Driver errors (redis-py's, sqlite3's, sockets') are translated with `raise ... from exc` in
the modules that talk to the driver (the tiers of `cache`, `regional.connections`'s
`translate_redis_errors` around every Redis call of `regional` and the doctor, the SQLite
event log), so the code above them catches members of this tree. `edge.ratelimit`, the
adapter over the `limits` package's Redis storage, handles its driver's errors itself: it
counts per process while that storage is down.
"""

from __future__ import annotations


class PlaylistServiceError(Exception):
    """Base of every error the service raises on purpose."""


class ConfigurationError(PlaylistServiceError, ValueError):
    """A setting (an env var, a URL, a file) the service cannot use; the start fails.

    Also a ValueError, which is what the settings loader and the CLIs report as bad input.
    """
