"""Answer bytes and HTTP headers, shared by the routed path and the lean hit path.

A cached answer is the JSON document without its `cache` member and closing brace; each
response appends `{"tier": …, "age": …}}`, so hits never re-encode the playlist.

HTTP caching (RFC 9111, RFC 5861): shared answers say `public, max-age, stale-while-
revalidate, stale-if-error` and carry `Age`, so a CDN computes the same remaining freshness
as this node; no `s-maxage` or `must-revalidate`, which would forbid serving stale when the
origin fails. The strong `ETag` is the playlist fingerprint: it names the ordered tracks and
version, the content a client revalidates; the `cache` member is per-response diagnostics,
and byte ranges are not offered, so no client can splice two bodies. Nothing varies by
request header, so no `Vary` is sent; personalised answers are `private` and POST-only.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from cache.base import Entry
from edge.schemas import PlaylistHead, TrackOut
from models.catalog import Catalog
from models.intent import Intent
from models.ranker import Playlist

_TAIL = b',"cache":'
JSON = "application/json"


def track_list(catalog: Catalog, playlist: Playlist) -> list[TrackOut]:
    """The playlist's tracks as they appear in answers."""
    titles, artists = catalog.titles.get(playlist.rows), catalog.artists.get(playlist.rows)
    return [
        TrackOut(id=i, title=t, artist=a, score=s)
        for i, t, a, s in zip(playlist.ids, titles, artists, playlist.scores, strict=True)
    ]


def render(catalog: Catalog, playlist: Playlist, intent: Intent, n: int) -> bytes:
    """The cacheable head of an answer: every member but `cache`."""
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
    return msgspec.json.encode(head)[:-1] + _TAIL


def parse_head(body: bytes) -> PlaylistHead:
    """Decode a cached head (for personalisation, which rewrites the track list)."""
    return msgspec.json.decode(body[: -len(_TAIL)] + b"}", type=PlaylistHead)


def encode_head(head: PlaylistHead) -> bytes:
    return msgspec.json.encode(head)[:-1] + _TAIL


def finish(head: bytes, tier: str, age: int) -> bytes:
    """The full response body: the head plus this response's cache member."""
    return b'%s{"tier":"%s","age":%d}}' % (head, tier.encode(), age)


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


class HeaderPolicy:
    """Cache-Control and friends for one node's settings."""

    def __init__(
        self,
        *,
        revalidate: float,
        stale_if_error: float,
        fallback_ttl: float,
        private_max_age: float,
    ) -> None:
        self._shared_tail = (
            f", stale-while-revalidate={int(revalidate)}, stale-if-error={int(stale_if_error)}"
        )
        self._fallback = f"public, max-age={int(fallback_ttl)}"
        self._private = f"private, max-age={int(private_max_age)}"

    def cache_control(self, entry: Entry, private: bool) -> str:
        if private:
            return self._private
        if not entry.shared:
            return self._fallback
        return f"public, max-age={int(entry.max_age)}{self._shared_tail}"

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
        return {
            "cache-control": self.cache_control(entry, private),
            "etag": f'"{etag or entry.etag}"',
            "age": str(age),
            "surrogate-key": " ".join(entry.tags),
            "x-cache": label,
            "server-timing": server_timing(timings),
        }


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
