"""What makes a stored event safe: masked prompt text and a keyed pseudonym for the user."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from regional.events.schema import Event, EventIn

_MASKS = (
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE), "[url]"),
    (re.compile(r"(?<!\w)@\w{2,}"), "[handle]"),
    (re.compile(r"\+?\d[\d ()./-]{5,}\d"), "[number]"),
)


def mask_pii(text: str) -> str:
    """Prompt text with what could identify a person replaced by placeholders."""
    for pattern, placeholder in _MASKS:
        text = pattern.sub(placeholder, text)
    return text


class Pseudonymizer:
    """Turns client events into stored ones for one region, with the region's user-hash key."""

    def __init__(self, key: bytes, region: str, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("the user-hash key must have at least 16 bytes")
        self._key = key
        self.region = region
        self._clock = clock

    def user(self, token: str) -> str:
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()[:32]

    def stored(self, event: EventIn) -> Event:
        return Event(
            event_id=event.event_id,
            type=event.type,
            playlist=event.playlist,
            prompt_key=event.prompt_key,
            track_id=event.track_id,
            position=event.position,
            dwell_ms=event.dwell_ms,
            client_ms=int(event.ts.timestamp() * 1000),
            user=self.user(event.user),
            prompt=mask_pii(event.prompt) if event.prompt else "",
            region=self.region,
            received_ms=int(self._clock() * 1000),
        )


def load_or_make_key(path: Path) -> bytes:
    """The user-hash key kept in `path`, made (32 random bytes, mode 0600) if it is absent.

    For a single node without a configured key: its hashes stay stable across restarts.
    A region of several edges must share one key through settings instead.
    """
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole under another name, then linked into place: workers starting together
    # never read a half-written key, and the first link wins for all of them.
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    with open(draft, "w", opener=lambda name, flags: os.open(name, flags, 0o600)) as out:
        out.write(os.urandom(32).hex())
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return bytes.fromhex(path.read_text().strip())
