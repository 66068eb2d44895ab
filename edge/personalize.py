"""Per-user adjustment after the cache: drop tracks a user excluded, backfill, never share.

Exclusion sets live in a cache tier under a hash of the user token (the token itself is
never stored or logged), as a JSON list of track ids, so the same data can sit in L1 now
and in Redis once the event pipeline fills it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

import msgspec

from cache.base import Entry, Tier
from edge import answers
from edge.settings import EdgeSettings
from models.artifacts import Artifacts
from models.intent import Intent
from models.ranker import Playlist, fingerprint
from regional.consumers import SessionStore
from regional.errors import StoreUnavailable

log = logging.getLogger("edge.personalize")

Clock = Callable[[], float]


class UserExclusions:
    """Track ids each user does not want, bounded per user, expiring after `ttl` seconds."""

    def __init__(
        self,
        tier: Tier,
        *,
        pseudonym: Callable[[str], str],
        max_items: int,
        ttl: float = 30 * 86400,
        clock: Clock = time.time,
    ) -> None:
        self._tier = tier
        self._pseudonym = pseudonym
        """The keyed hash of a user token (the region's user-hash key)."""
        self.max_items = max_items
        self.ttl = ttl
        self._clock = clock

    def key(self, token: str) -> str:
        return "excl:" + self._pseudonym(token)

    async def get(self, token: str) -> frozenset[str]:
        entry = await self._tier.get(self.key(token))
        if entry is None:
            return frozenset()
        return frozenset(msgspec.json.decode(entry.body, type=list[str]))

    async def add(self, token: str, track_ids: Iterable[str]) -> None:
        """Add ids (the most recent are kept when the set is over its bound)."""
        key = self.key(token)
        entry = await self._tier.get(key)
        ids = msgspec.json.decode(entry.body, type=list[str]) if entry else []
        for track in track_ids:
            if track in ids:
                ids.remove(track)
            ids.append(track)
        ids = ids[-self.max_items :]
        now = self._clock()
        until = now + self.ttl
        stored = Entry(msgspec.json.encode(ids), now, until, until, until, shared=True)
        await self._tier.set(key, stored, self.ttl)


class Personalizer:
    """A listener's answer: the shared one minus the tracks they excluded or skipped early
    this session, backfilled from the fallback list; private, never cached shared."""

    def __init__(
        self,
        artifacts: Artifacts,
        settings: EdgeSettings,
        *,
        exclusions: UserExclusions,
        headers: answers.HeaderPolicy,
        fallback: Callable[[Intent, int], Playlist],
        sessions: SessionStore | None = None,
        user_hash: Callable[[str], str] | None = None,
    ) -> None:
        self.catalog = artifacts.catalog
        self.version = artifacts.version
        self.settings = settings
        self.exclusions = exclusions
        self.headers = headers
        self.fallback = fallback
        self.sessions = sessions
        """The region's session state (None: events are off)."""
        self.user_hash = user_hash or exclusions.key
        """The keyed pseudonym of a user token (the region's)."""

    async def session_skips(self, token: str) -> frozenset[str]:
        """Tracks the listener skipped early this session (from the event consumers); none
        when the session store does not answer within the remote timeout."""
        if self.sessions is None:
            return frozenset()
        try:
            async with asyncio.timeout(self.settings.remote_timeout_ms / 1000):
                return await self.sessions.skipped(self.user_hash(token))
        except (StoreUnavailable, TimeoutError) as exc:
            log.warning("session state unavailable", extra={"error": repr(exc)})
            return frozenset()

    async def answer(
        self,
        entry: Entry,
        token: str,
        intent: Intent,
        n: int,
        *,
        label: str,
        now: float,
        timings: dict[str, float],
        start: float,
    ) -> tuple[bytes, dict[str, str]]:
        """The personal body and its private headers (`start`: the request's, on the
        perf_counter clock)."""
        excluded = await self.exclusions.get(token) | await self.session_skips(token)
        head = answers.parse_head(entry.body)
        kept = [t for t in head.tracks if t.id not in excluded]
        if len(kept) < len(head.tracks):
            seen = {t.id for t in kept} | excluded
            extra = self.fallback(intent, self.settings.max_length)
            for track in answers.track_list(self.catalog, extra):
                if len(kept) >= n:
                    break
                if track.id not in seen:
                    kept.append(track)
        personal = msgspec.structs.replace(
            head, tracks=kept, fingerprint=fingerprint(self.version, [t.id for t in kept])
        )
        body = answers.encode_head(personal)
        timings["total"] = (time.perf_counter() - start) * 1000
        headers = self.headers.headers(
            entry,
            label=label,
            age=int(entry.age(now)),
            timings=timings,
            etag=answers.etag_of(body),
            private=True,
        )
        log.debug(
            "personalised",
            extra={"user": self.user_hash(token), "dropped": len(head.tracks) - len(kept)},
        )
        return body, headers
