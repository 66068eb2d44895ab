"""What the edge answers, as typed values (msgspec Structs, decoded strictly)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec

EventType = Literal["play", "skip", "complete", "save", "thumb_up", "thumb_down"]


class Track(msgspec.Struct, frozen=True):
    id: str
    title: str
    artist: str
    score: float


class CacheInfo(msgspec.Struct, frozen=True):
    """Read from the answer's X-Cache and Age headers."""

    tier: str
    """Where the answer came from: L1, L2, GLOBAL, MISS, SEMANTIC, STALE, FALLBACK."""
    age: int
    """Seconds since the answer was computed."""


class Playlist(msgspec.Struct, frozen=True):
    tracks: list[Track]
    prompt: str
    n: int
    version: str
    """The artifact version that made it."""
    fingerprint: str
    """Names this exact playlist; events about it carry it as `playlist`."""
    degraded: bool
    """A fallback answer (the encoder was unavailable): fine to show, not to keep long."""
    prompt_key: str
    """Names the prompt across versions and lengths; events carry it."""
    cache: CacheInfo = CacheInfo("", 0)
    etag: str = ""
    """The response's ETag, sent back as If-None-Match by the client."""
    not_modified: bool = False
    """True when the server answered 304 and this is the client's kept copy."""


class EventsAccepted(msgspec.Struct, frozen=True):
    accepted: int
    duplicates: int
    ids: list[str | None]


class Problem(msgspec.Struct, frozen=True):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str = ""
    status: int = 0
    detail: str = ""
    errors: list[dict[str, str | int]] | None = None


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One listener event, as POST /v1/events takes it."""

    event_id: str
    type: EventType
    playlist: str
    prompt_key: str
    track_id: str
    position: int
    ts: datetime
    user: str
    dwell_ms: int = 0

    @classmethod
    def about(
        cls,
        playlist: Playlist,
        position: int,
        type: EventType,
        *,
        user: str,
        event_id: str,
        dwell_ms: int = 0,
        at: datetime | None = None,
    ) -> Event:
        """The event for the track at `position` of `playlist`."""
        return cls(
            event_id=event_id,
            type=type,
            playlist=playlist.fingerprint,
            prompt_key=playlist.prompt_key,
            track_id=playlist.tracks[position].id,
            position=position,
            ts=at or datetime.now(UTC),
            user=user,
            dwell_ms=dwell_ms,
        )
