"""What a listener event is on the wire (`EventIn`) and as stored (`Event`), and its bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

SCHEMA_VERSION = 1
"""Version of the stored event record (and of the archive's Parquet schema)."""

EventType = Literal["play", "skip", "complete", "save", "thumb_up", "thumb_down"]
_Token = Annotated[str, Meta(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")]


class EventIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One event as a client sends it."""

    event_id: Annotated[str, Meta(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
    type: EventType
    playlist: _Token
    """The playlist's fingerprint (its ETag without quotes)."""
    prompt_key: _Token
    """The answer's `prompt_key` (also its `p:` Surrogate-Key tag)."""
    track_id: _Token
    position: Annotated[int, Meta(ge=0, le=10_000)]
    dwell_ms: Annotated[int, Meta(ge=0, le=86_400_000)] = 0
    ts: Annotated[datetime, Meta(tz=True)]
    """When it happened on the client (RFC 3339 with an offset)."""
    user: Annotated[str, Meta(min_length=1, max_length=256)]
    prompt: Annotated[str, Meta(max_length=500)] = ""
    """The prompt the playlist answered, if the client has it (stored masked)."""


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored: pseudonymous, masked, stamped."""

    event_id: str
    type: str
    playlist: str
    prompt_key: str
    track_id: str
    position: int
    dwell_ms: int
    client_ms: int
    user: str
    """Keyed hash of the user token."""
    prompt: str
    """The prompt text with e-mail addresses, phone numbers, URLs, handles and long numbers
    masked; empty when the client sent none."""
    region: str
    received_ms: int
    v: int = SCHEMA_VERSION


encode_event = msgspec.json.encode
_decode = msgspec.json.Decoder(Event).decode


def read_event(raw: bytes | str) -> Event | None:
    """The stored event in `raw`, or None when the bytes are not a readable event."""
    try:
        return _decode(raw)
    except msgspec.DecodeError:
        return None
