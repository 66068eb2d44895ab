"""`RefreshAhead`: which keys to refresh before shared caches' copies of them run out.

Behind a CDN the node sees each answer about once per shared lifetime (s-maxage), when a
CDN's copy runs out; if the node only refreshed on demand, that request would find an entry
as old as the CDN's copy and hand it over already expired for the CDN. So the node counts
the keys it answers in the current and the previous shared lifetime (a heavy-hitters
sketch, bounded whatever the number of prompts) and recomputes the due ones of the most
counted in the background (`PlaylistService.refresh_ahead`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
from cachetools import LRUCache

from cache.popularity import Popularity
from models.intent import Slots


class PromptSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a warmer needs to rebuild an answer: the masked prompt, its slots, the length."""

    prompt: str
    slots: Slots
    n: int


class RefreshAhead:
    """The keys answered in the last two windows of `window` seconds, at most `top` of
    each, with their request descriptions."""

    def __init__(self, *, top: int, window: float, clock: Callable[[], float] = time.time) -> None:
        self.top = top
        self.window = window
        self._clock = clock
        self._current = Popularity()
        self._previous: list[tuple[str, bytes]] = []
        self._ends = clock() + window
        # Hits on the lean path name no request; the last description seen for a key is
        # kept across windows.
        self._specs: LRUCache[str, bytes] = LRUCache(maxsize=max(16, 4 * top))

    def hit(self, key: str, spec: bytes | None = None) -> None:
        """Count one answer for `key`; `spec` describes its request when the caller has it."""
        if self.top <= 0:
            return
        self._roll(self._clock())
        if spec is not None:
            self._specs[key] = spec
        else:
            spec = self._specs.get(key)
        self._current.hit(key, spec)

    def candidates(self, now: float) -> list[tuple[str, bytes]]:
        """The most answered keys of this window and the last, each once."""
        if self.top <= 0:
            return []
        self._roll(now)
        found = dict(self._previous)
        found.update((c.key, c.spec) for c in self._current.top(self.top))
        return list(found.items())

    def _roll(self, now: float) -> None:
        """Start a new window once the current one is over."""
        if now < self._ends:
            return
        self._previous = [(c.key, c.spec) for c in self._current.drain(self.top)]
        if now >= self._ends + self.window:  # a long pause: the last window saw nothing
            self._previous = []
        self._ends = now + self.window
