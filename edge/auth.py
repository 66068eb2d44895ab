"""API keys: who may call what.

`EDGE_API_KEYS_FILE` names a file of lines `name:scope[,scope...]:sha256-hex-of-key[:tier]`
(blank lines and `#` comments are skipped). Scopes: `read` (playlists), `events` (POST
/v1/events), `admin` (health and metrics when those are protected). Clients send the key
itself in `X-API-Key`; only its SHA-256 is kept, so the file holds no secret worth stealing.
With no file configured the service is open to every client and says so at startup.

A missing or unknown key is a 401, a known key without the route's scope a 403, both as
problem+json. The tier (fourth field) names the client's rate-limit tier.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from edge.errors import Forbidden, Unauthorized

SCOPES = frozenset({"read", "events", "admin"})
HEADER = "x-api-key"
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HASH = re.compile(r"^[0-9a-f]{64}$")


class MissingApiKey(Unauthorized):
    title = "API key required"
    headers: Mapping[str, str] = MappingProxyType({"www-authenticate": 'ApiKey header="X-API-Key"'})


class ApiKey(NamedTuple):
    name: str
    scopes: frozenset[str]
    tier: str


def load_keys(path: Path) -> dict[str, ApiKey]:
    """The keys in `path` by the hex SHA-256 of the key; ValueError naming the bad line."""
    keys: dict[str, ApiKey] = {}
    names: set[str] = set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) not in (3, 4):
            raise ValueError(f"{path}:{number}: expected name:scopes:sha256[:tier]")
        name, scopes_text, digest = parts[:3]
        tier = parts[3] if len(parts) == 4 else "default"
        scopes = frozenset(s.strip() for s in scopes_text.split(",") if s.strip())
        if not _NAME.match(name):
            raise ValueError(f"{path}:{number}: bad key name {name!r}")
        if not scopes or not scopes <= SCOPES:
            raise ValueError(f"{path}:{number}: scopes must be some of {', '.join(sorted(SCOPES))}")
        if not _HASH.match(digest):
            raise ValueError(
                f"{path}:{number}: the key must be given as 64 lowercase hex (SHA-256)"
            )
        if not _NAME.match(tier):
            raise ValueError(f"{path}:{number}: bad tier {tier!r}")
        if name in names or digest in keys:
            raise ValueError(f"{path}:{number}: key {name!r} appears twice")
        names.add(name)
        keys[digest] = ApiKey(name, scopes, tier)
    return keys


class Authenticator:
    """Checks presented keys against the configured ones (None: the service is open)."""

    def __init__(self, keys: dict[str, ApiKey] | None) -> None:
        self._keys = keys

    @property
    def open(self) -> bool:
        return self._keys is None

    def lookup(self, presented: str | None) -> ApiKey | None:
        """The key's record, or None when it is absent or unknown."""
        if self._keys is None or not presented:
            return None
        return self._keys.get(hashlib.sha256(presented.encode()).hexdigest())

    def allows(self, presented: str | None, scope: str) -> bool:
        if self._keys is None:
            return True
        key = self.lookup(presented)
        return key is not None and scope in key.scopes

    def require(self, presented: str | None, scope: str) -> ApiKey | None:
        """The caller's key if it may use `scope`; None when open; else 401 or 403."""
        if self._keys is None:
            return None
        if not presented:
            raise MissingApiKey("send your API key in the X-API-Key header")
        key = self.lookup(presented)
        if key is None:
            raise MissingApiKey("unknown API key")
        if scope not in key.scopes:
            raise Forbidden(f"the key {key.name!r} may not use {scope!r} endpoints")
        return key
