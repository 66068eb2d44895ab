"""Errors raised by the inference core.

    ModelError
    ├── ArtifactError            an artifact folder is missing, corrupt or mismatched
    ├── CatalogError             a catalog file cannot be read or has bad rows
    ├── CorpusError              a playlist corpus file cannot be read or is malformed
    ├── EncoderError             the prompt encoder failed to build or to run
    │   └── ParityError          the int8 encoder drifted too far from fp32
    ├── IndexError_              the track index failed to build, load or search
    └── IntentError              a prompt or slot set cannot be turned into an intent

Callers outside `models` catch `ModelError` (or a subclass) and nothing broader. The branch
belongs to the service's one tree, drawn in `errors`.
"""

from __future__ import annotations

from errors import PlaylistServiceError


class ModelError(PlaylistServiceError):
    """Base of every error the inference core raises on purpose."""


class ArtifactError(ModelError):
    """An artifact folder is missing, corrupt (checksum) or of an unsupported format."""


class CatalogError(ModelError):
    """A catalog source cannot be read, or has rows that fail validation."""

    def __init__(self, message: str, bad_rows: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message)
        self.bad_rows = bad_rows or []


class CorpusError(ModelError):
    """A playlist corpus (MPD slices or JSONL) cannot be read, or a playlist is malformed."""


class EncoderError(ModelError):
    """The prompt encoder could not be built, loaded or run."""


class ParityError(EncoderError):
    """The quantized encoder's output is too far from the fp32 graph's."""


class IndexError_(ModelError):
    """The HNSW track index failed to build, load or search."""


class IntentError(ModelError):
    """A request cannot be turned into a usable intent (empty, contradictory, too long)."""
