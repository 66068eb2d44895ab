"""Answer bytes and HTTP headers, shared by the routed path and the lean hit path.

A cached answer's body is the whole JSON document, the same bytes on every delivery: where
an answer came from (`X-Cache`) and how old it is (`Age`) are headers, so a shared cache
that stores the body stores nothing that stops being true. The strong `ETag` is a hash of
those bytes: one ETag, one body.

HTTP caching (RFC 9111, RFC 5861): shared answers say `public, max-age, s-maxage,
stale-while-revalidate, stale-if-error` and carry `Age`. `max-age` is the node's own
freshness; `s-maxage`, what shared caches (CDNs) are told, is a share of it, so the node's
entry outlives every shared copy and the node refreshes popular entries before shared
copies run out: a CDN's refresh gets a fresh answer (or a 304), never one past its age. An
answer the node could not refresh in time is given to shared caches a little longer
(`s-maxage` past its `Age`, never past `max-age`) while the node replaces it, so a CDN
never receives an answer already expired for it (Varnish would keep it as hit-for-miss).
No `must-revalidate`, which would forbid serving stale when the origin fails.

With API keys configured, shared answers say `Vary: X-API-Key`: a shared cache keeps one
copy per key and never gives a keyed answer to a request without that key (the node
refuses keyless requests, and refusals are `no-store`). Personalised answers are `private`
and POST-only.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import xxhash

from cache.base import Entry
from edge.schemas import PlaylistHead, TrackOut
from edge.settings import EdgeSettings
from models.catalog import Catalog
from models.intent import Intent
from models.ranker import Playlist

JSON = "application/json"


def track_list(catalog: Catalog, playlist: Playlist) -> list[TrackOut]:
    """The playlist's tracks as they appear in answers."""
    titles, artists = catalog.titles.get(playlist.rows), catalog.artists.get(playlist.rows)
    return [
        TrackOut(id=i, title=t, artist=a, score=s)
        for i, t, a, s in zip(playlist.ids, titles, artists, playlist.scores, strict=True)
    ]


def render(catalog: Catalog, playlist: Playlist, intent: Intent, n: int) -> bytes:
    """The body of an answer, as cached and sent."""
    head = PlaylistHead(
        tracks=track_list(catalog, playlist),
        prompt=intent.text,
        slots=intent.slots,
        n=n,
        version=playlist.version,
        fingerprint=playlist.fingerprint,
        degraded=playlist.degraded,
        prompt_key=intent.prompt_key(),
    )
    return msgspec.json.encode(head)


def parse_head(body: bytes) -> PlaylistHead:
    """Decode a cached body (for personalisation, which rewrites the track list)."""
    return msgspec.json.decode(body, type=PlaylistHead)


def encode_head(head: PlaylistHead) -> bytes:
    return msgspec.json.encode(head)


def etag_of(body: bytes) -> str:
    """The strong entity tag of a body: a hash of its bytes."""
    return xxhash.xxh3_128_hexdigest(body)


def surrogate_keys(
    intent: Intent, key: str, version: str, track_ids: Sequence[str] = ()
) -> tuple[str, ...]:
    """Tags a CDN (and our own purge) can drop answers by: the request, prompt, version,
    slots, and `t:<id>` for every track in the list."""
    slots = intent.slots
    tags = [f"k:{key}", f"p:{intent.prompt_key()}", f"v:{version}"]
    tags += [f"mood:{m}" for m in slots.moods] + [f"activity:{a}" for a in slots.activities]
    tags += [f"genre:{g}" for g in slots.genres] + [f"no-genre:{g}" for g in slots.exclude_genres]
    tags += [f"t:{track}" for track in dict.fromkeys(track_ids)]
    return tuple(tags)


class Answer(msgspec.Struct):
    """What a handler sends: status, body bytes and headers."""

    status: int
    body: bytes
    headers: dict[str, str]


class HeaderPolicy:
    """Cache-Control and friends for one node's settings."""

    def __init__(
        self,
        *,
        revalidate: float,
        stale_if_error: float,
        fallback_ttl: float,
        private_max_age: float,
        shared_share: float = 1.0,
        refresh_ahead: float = 0.0,
        vary_key: bool = False,
    ) -> None:
        self._shared_tail = (
            f", stale-while-revalidate={int(revalidate)}, stale-if-error={int(stale_if_error)}"
        )
        self._fallback = f"public, max-age={int(fallback_ttl)}"
        self._private = f"private, max-age={int(private_max_age)}"
        self.shared_share = shared_share
        """Share of an entry's freshness that shared caches are told (s-maxage)."""
        self.refresh_ahead = refresh_ahead
        """Share of the shared lifetime after which the node refreshes a popular entry."""
        self.vary_key = vary_key

    @classmethod
    def of(cls, settings: EdgeSettings) -> HeaderPolicy:
        return cls(
            revalidate=settings.stale_while_revalidate,
            stale_if_error=settings.stale_if_error,
            fallback_ttl=settings.fallback_ttl,
            private_max_age=settings.private_max_age,
            shared_share=settings.shared_max_age,
            refresh_ahead=settings.refresh_ahead,
            vary_key=bool(settings.api_keys_file),
        )

    def shared_max_age(self, entry: Entry) -> int:
        """The s-maxage shared caches are told for an entry that is still young."""
        return max(1, int(entry.max_age * self.shared_share))

    def refresh_due(self, entry: Entry) -> float:
        """Clock time from which the node refreshes an entry ahead of its expiry."""
        return entry.created + self.shared_max_age(entry) * self.refresh_ahead

    def cache_control(self, entry: Entry, private: bool, age: int = 0) -> str:
        if private:
            return self._private
        if not entry.shared:
            return self._fallback
        max_age = int(entry.max_age)
        shared = self.shared_max_age(entry)
        if age >= shared and age < max_age:
            # Not refreshed in time: keep it in shared caches a little longer (at least a
            # second, at most as long as the refresh-ahead margin) while the node replaces it.
            margin = max(1, int(shared * (1.0 - self.refresh_ahead)))
            shared = min(max_age, age + margin)
        shared = min(shared, max_age)
        return f"public, max-age={max_age}, s-maxage={shared}{self._shared_tail}"

    def headers(
        self,
        entry: Entry,
        *,
        label: str,
        age: int,
        timings: dict[str, float],
        etag: str | None = None,
        private: bool = False,
    ) -> dict[str, str]:
        """Response headers of an answer (also those of its 304)."""
        headers = {
            "cache-control": self.cache_control(entry, private, age),
            "etag": f'"{etag or entry.etag}"',
            "age": str(age),
            "surrogate-key": " ".join(entry.tags),
            "x-cache": label,
            "server-timing": server_timing(timings),
        }
        if self.vary_key and not private:
            headers["vary"] = "X-API-Key"
        return headers


def server_timing(timings: dict[str, float]) -> str:
    return ", ".join(f"{name};dur={ms:.3f}" for name, ms in timings.items())


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison against any listed tag, or `*`."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*" or tag.removeprefix("W/") == f'"{etag}"':
            return True
    return False
