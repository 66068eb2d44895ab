"""Wire formats: the POST body, the response document, and the request both forms become."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from models.intent import Slots

SCHEMA_VERSION = 1

Name = Annotated[str, Meta(min_length=1, max_length=64)]
Names = Annotated[list[Name], Meta(max_length=16)]
Bpm = Annotated[float, Meta(ge=0, le=300)]
Year = Annotated[int, Meta(ge=1900, le=2100)]


class SlotsBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Structured slots of a POST; set fields override what the prompt text says."""

    moods: Names = []
    activities: Names = []
    genres: Names = []
    exclude_genres: Names = []
    exclude_moods: Names = []
    exclude_attributes: Names = []
    tempo: tuple[Bpm, Bpm] | None = None
    era: tuple[Year, Year] | None = None
    explicit: bool | None = None

    def to_slots(self) -> Slots:
        return Slots(
            moods=tuple(self.moods),
            activities=tuple(self.activities),
            genres=tuple(self.genres),
            exclude_genres=tuple(self.exclude_genres),
            exclude_moods=tuple(self.exclude_moods),
            exclude_attributes=tuple(self.exclude_attributes),
            tempo=self.tempo,
            era=self.era,
            explicit=self.explicit,
        )


class PlaylistBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """POST /v1/playlists: free text and/or slots. `schema_version` is required."""

    schema_version: int
    prompt: Annotated[str, Meta(max_length=2000)] = ""
    slots: SlotsBody | None = None
    n: Annotated[int, Meta(ge=1, le=1000)] | None = None
    user: Annotated[str, Meta(min_length=1, max_length=256)] | None = None


PurgeItem = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
PurgeList = Annotated[list[PurgeItem], msgspec.Meta(max_length=1000)]


class PurgeBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What /admin/purge drops: cache keys, tags (as in Surrogate-Key), and track ids."""

    keys: PurgeList = msgspec.field(default_factory=list)
    tags: PurgeList = msgspec.field(default_factory=list)
    tracks: PurgeList = msgspec.field(default_factory=list)
    soft: bool = False
    """Mark the entries stale (served while revalidating) instead of dropping them."""


class FaultBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What /admin/faults sets: the encoder raises, hangs, or (null) works again."""

    encoder: Literal["raise", "hang"] | None


class VersionsBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """What /admin/versions does: load a candidate, set its share, promote, roll back or
    unload it."""

    action: Literal["load", "split", "shadow", "promote", "rollback", "unload"]
    artifacts: Annotated[str, Meta(min_length=1, max_length=1024)] | None = None
    """The candidate's artifact folder (load)."""
    percent: Annotated[float, Meta(ge=0, le=100)] | None = None
    """The candidate's share of listeners (or, for anonymous requests, prompts) (split)."""
    experiment: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    """Names the assignment: a new name reshuffles who gets the candidate (split)."""
    ratio: Annotated[float, Meta(ge=0, le=1)] | None = None
    """Share of the primary's misses the candidate also answers, to compare (shadow)."""


class PlaylistRequest(msgspec.Struct, frozen=True):
    """What GET and POST both reduce to before the intent is parsed."""

    prompt: str
    slots: Slots | None
    n: int
    user: str | None = None


class TrackOut(msgspec.Struct, frozen=True):
    id: str
    title: str
    artist: str
    score: float


class PlaylistHead(msgspec.Struct, frozen=True):
    """An answer's body: the same bytes on every delivery (where it came from and its age
    are the X-Cache and Age headers)."""

    tracks: list[TrackOut]
    prompt: str
    slots: Slots
    n: int
    version: str
    fingerprint: str
    degraded: bool
    prompt_key: str = ""
    """Names the prompt across versions and lengths; events about this answer carry it."""


class PlaylistOut(PlaylistHead, frozen=True, kw_only=True):
    """The response document (for the OpenAPI schema; bodies are sent as cached bytes)."""


class Problem(msgspec.Struct, frozen=True, omit_defaults=True):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str = ""
    errors: list[dict[str, str | int]] | None = None
    """Extension member: one entry per bad item of a batch (`index`, `detail`)."""
