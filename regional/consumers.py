"""Consumers of the region's event log: a loop per consumer group, session state, labels.

Every consumer is at-least-once: it handles a batch, then acks it. A batch it fails on stays
pending and comes back, to it or (once idle for `claim_idle_ms`) to another consumer of the
group. Handlers are therefore idempotent: adding a track to a set twice changes nothing, and
label counters remember which events they have counted. A log or store that fails raises
`StoreUnavailable` (the log's `LogUnavailable` is one): the consumer waits and takes up what
is pending again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from models.listening import ACCEPTING, EARLY_SKIPPING, REJECTING
from models.listening import LABEL_RULES_VERSION as LABEL_RULES_VERSION
from regional.connections import run_script, translate_redis_errors
from regional.errors import StoreUnavailable
from regional.events import Delivery, Event, EventLog

log = logging.getLogger("regional.consumers")

Clock = Callable[[], float]
Handler = Callable[[Sequence[Delivery]], Awaitable[None]]


class Consumer:
    """One consumer of one group: pending first, then claims, then new entries."""

    def __init__(
        self,
        events: EventLog,
        group: str,
        name: str,
        handle: Handler,
        *,
        batch: int = 256,
        idle_ms: int = 200,
        claim_idle_ms: int = 30_000,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.events = events
        self.group = group
        self.name = name
        self.handle = handle
        self.batch = batch
        self.idle_ms = idle_ms
        self.claim_idle_ms = claim_idle_ms
        self.handled = 0
        self.unreadable = 0
        self._after = after
        """Run at the end of every pass, busy or idle (the archiver trims the log there)."""
        self._started = False
        self._claimed_at = float("-inf")

    async def run_once(self) -> int:
        """Handle one batch; how many entries it held."""
        if not self._started:
            await self.events.ensure_group(self.group)
            # What this consumer held when it last stopped comes back first, batch by batch.
            deliveries = await self.events.pending(self.group, self.name, self.batch)
            self._started = not deliveries
        elif time.monotonic() - self._claimed_at >= self.claim_idle_ms / 2000:
            # What another consumer has held too long (it crashed, or hangs): take it over.
            self._claimed_at = time.monotonic()
            deliveries = await self.events.claim(
                self.group, self.name, self.claim_idle_ms, self.batch
            )
        else:
            deliveries = []
        if not deliveries:
            deliveries = await self.events.read(
                self.group, self.name, self.batch, block_ms=self.idle_ms
            )
        if deliveries:
            readable = [Delivery(e.partition, e.id, e.event) for e in deliveries if e.event]
            if len(readable) < len(deliveries):
                self.unreadable += len(deliveries) - len(readable)
                log.warning(
                    "unreadable event log entries skipped",
                    extra={"group": self.group, "entries": len(deliveries) - len(readable)},
                )
            if readable:
                await self.handle(readable)
            await self.events.ack(self.group, deliveries)
            self.handled += len(readable)
        if self._after is not None:
            await self._after()
        return len(deliveries)

    async def run(self) -> None:
        """Until cancelled; a failing batch is logged and retried after a pause."""
        unavailable = False
        while True:
            try:
                await self.run_once()
            except StoreUnavailable as exc:  # the log or a store is down: wait for it
                if not unavailable:
                    log.warning(
                        "event log unavailable; consumer waiting",
                        extra={"group": self.group, "error": repr(exc)},
                    )
                unavailable = True
                self._started = False  # take up what is pending again
                await asyncio.sleep(1.0)
                continue
            except Exception:  # a consumer that dies would stop its group for good
                log.exception("event consumer failed", extra={"group": self.group})
                self._started = False
                await asyncio.sleep(1.0)
                continue
            if unavailable:
                log.warning("event log back; consumer running", extra={"group": self.group})
                unavailable = False


# -- session state -----------------------------------------------------------------------


class SessionStore(Protocol):
    """Per hashed user: tracks skipped early (not to be served again) and recently played.
    A store that fails raises `StoreUnavailable`."""

    async def update(self, changes: dict[str, tuple[list[str], list[str]]]) -> None:
        """Per user: tracks skipped early and tracks played, added to the session."""
        ...

    async def skipped(self, user: str) -> frozenset[str]: ...

    async def played(self, user: str) -> list[str]: ...


class RedisSessionStore:
    """Two sorted sets per user (track -> last time), expiring `ttl` after the last event."""

    def __init__(
        self,
        client: Redis | RedisCluster,
        region: str,
        *,
        ttl: float = 1800,
        keep: int = 200,
        clock: Clock = time.time,
    ) -> None:
        self.client = client
        self.region = region
        self.ttl = ttl
        self.keep = keep
        self._clock = clock

    def _key(self, user: str, kind: str) -> str:
        return f"session:{{{self.region}:{user}}}:{kind}"

    async def update(self, changes: dict[str, tuple[list[str], list[str]]]) -> None:
        now = self._clock()
        # One round trip for the whole batch; each command is idempotent, so a redelivered
        # batch changes nothing.
        with translate_redis_errors("session store: update"):
            async with self.client.pipeline(transaction=False) as pipe:
                for user, (skipped, played) in changes.items():
                    for kind, tracks in (("skipped", skipped), ("played", played)):
                        if not tracks:
                            continue
                        key = self._key(user, kind)
                        pipe.zadd(key, dict.fromkeys(tracks, now))
                        pipe.zremrangebyrank(key, 0, -self.keep - 1)
                        pipe.pexpire(key, int(self.ttl * 1000))
                await pipe.execute()

    async def skipped(self, user: str) -> frozenset[str]:
        with translate_redis_errors("session store: skipped"):
            members: Any = await self.client.zrange(self._key(user, "skipped"), 0, -1)
        return frozenset(m.decode() if isinstance(m, bytes) else m for m in members)

    async def played(self, user: str) -> list[str]:
        with translate_redis_errors("session store: played"):
            members: Any = await self.client.zrevrange(self._key(user, "played"), 0, -1)
        return [m.decode() if isinstance(m, bytes) else m for m in members]


class MemorySessionStore:
    """The embedded session store: bounded, expiring, in this process."""

    def __init__(
        self, *, ttl: float = 1800, keep: int = 200, users: int = 100_000, clock: Clock = time.time
    ) -> None:
        self.ttl = ttl
        self.keep = keep
        self.users = users
        self._clock = clock
        self._sessions: OrderedDict[str, tuple[float, dict[str, float], dict[str, float]]] = (
            OrderedDict()
        )

    def _live(self, user: str) -> tuple[float, dict[str, float], dict[str, float]] | None:
        session = self._sessions.get(user)
        if session is not None and session[0] <= self._clock():
            del self._sessions[user]
            return None
        return session

    async def update(self, changes: dict[str, tuple[list[str], list[str]]]) -> None:
        for user, (skipped, played) in changes.items():
            self._update(user, skipped, played)

    def _update(self, user: str, skipped: Sequence[str], played: Sequence[str]) -> None:
        now = self._clock()
        session = self._live(user)
        skips, plays = (session[1], session[2]) if session else ({}, {})
        for tracks, into in ((skipped, skips), (played, plays)):
            for track in tracks:
                into.pop(track, None)
                into[track] = now
            while len(into) > self.keep:
                del into[next(iter(into))]
        self._sessions[user] = (now + self.ttl, skips, plays)
        self._sessions.move_to_end(user)
        while len(self._sessions) > self.users:
            self._sessions.popitem(last=False)

    async def skipped(self, user: str) -> frozenset[str]:
        session = self._live(user)
        return frozenset(session[1]) if session else frozenset()

    async def played(self, user: str) -> list[str]:
        session = self._live(user)
        return list(reversed(session[2])) if session else []


def session_changes(
    events: Sequence[Event], early_skip_ms: int
) -> dict[str, tuple[list[str], list[str]]]:
    """Per user: tracks to exclude (skipped within `early_skip_ms`, or thumbed down) and
    tracks played."""
    changes: dict[str, tuple[list[str], list[str]]] = {}
    for event in events:
        skipped, played = changes.setdefault(event.user, ([], []))
        if event.type == "thumb_down" or (event.type == "skip" and event.dwell_ms < early_skip_ms):
            skipped.append(event.track_id)
        elif event.type in ("play", "complete", "save", "thumb_up"):
            played.append(event.track_id)
    return changes


def session_handler(store: SessionStore, early_skip_ms: int = 30_000) -> Handler:
    async def handle(deliveries: Sequence[Delivery]) -> None:
        await store.update(session_changes([d.event for d in deliveries], early_skip_ms))

    return handle


# -- prompt-quality labels ---------------------------------------------------------------


def label_of(event: Event, early_skip_ms: int = 30_000) -> str | None:
    """Rules v1: a complete, save or thumb-up accepts the prompt's playlist; a skip within
    `early_skip_ms` or a thumb-down rejects it; plays and later skips say nothing. The rules
    and their version (`LABEL_RULES_VERSION`) are the ones training reads the archive with."""
    if event.type in ACCEPTING:
        return "accept"
    if event.type in REJECTING or (event.type == EARLY_SKIPPING and event.dwell_ms < early_skip_ms):
        return "reject"
    return None


class LabelCounts(msgspec.Struct, frozen=True):
    """A prompt's labels under one rules version."""

    accept: int = 0
    reject: int = 0

    @property
    def labelled(self) -> int:
        return self.accept + self.reject

    def mostly_rejected(self, least: int = 5, share: float = 0.5) -> bool:
        """At least `least` labels, and more than `share` of them rejections."""
        return self.labelled >= least and self.reject > share * self.labelled


class LabelStore(Protocol):
    """Accept and reject counts per prompt; a store that fails raises `StoreUnavailable`."""

    async def count(self, labels: Sequence[tuple[str, str, str]]) -> int:
        """Count each (event_id, prompt_key, label) once per event, however often it is
        delivered; how many were new."""
        ...

    async def get(self, prompt_key: str) -> LabelCounts: ...


# The event's id joins the prompt's set of counted events, and only a newcomer is counted.
_COUNT = """
redis.call('EXPIRE', KEYS[1], ARGV[4])
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
  redis.call('EXPIRE', KEYS[2], ARGV[3])
  return 1
end
return 0
"""


class RedisLabelStore:
    def __init__(
        self,
        client: Redis | RedisCluster,
        region: str,
        *,
        dedupe_seconds: int = 86_400,
        keep_seconds: int = 30 * 86_400,
    ) -> None:
        self.client = client
        self.region = region
        self.dedupe_seconds = dedupe_seconds
        self.keep_seconds = keep_seconds
        self._count = client.register_script(_COUNT)

    def _key(self, prompt_key: str) -> str:
        return f"labels:{{{self.region}:{prompt_key}}}:v{LABEL_RULES_VERSION}"

    async def count(self, labels: Sequence[tuple[str, str, str]]) -> int:
        calls = []
        for event_id, prompt_key, label in labels:
            key = self._key(prompt_key)
            calls.append(
                ([key, key + ":counted"], [event_id, label, self.dedupe_seconds, self.keep_seconds])
            )
        with translate_redis_errors("label store: count"):
            replies = await run_script(self.client, self._count, calls)
        return sum(int(new) for new in replies)

    async def get(self, prompt_key: str) -> LabelCounts:
        with translate_redis_errors("label store: get"):
            raw: Any = await self.client.hgetall(self._key(prompt_key))
        counts = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
        return LabelCounts(counts.get("accept", 0), counts.get("reject", 0))


class MemoryLabelStore:
    def __init__(self, *, remember: int = 1_000_000) -> None:
        self._counts: dict[str, LabelCounts] = {}
        self._counted: OrderedDict[str, None] = OrderedDict()
        self.remember = remember

    async def count(self, labels: Sequence[tuple[str, str, str]]) -> int:
        new = 0
        for event_id, prompt_key, label in labels:
            if event_id in self._counted:
                continue
            new += 1
            self._counted[event_id] = None
            if len(self._counted) > self.remember:
                self._counted.popitem(last=False)
            old = self._counts.get(prompt_key, LabelCounts())
            self._counts[prompt_key] = LabelCounts(
                old.accept + (label == "accept"), old.reject + (label == "reject")
            )
        return new

    async def get(self, prompt_key: str) -> LabelCounts:
        return self._counts.get(prompt_key, LabelCounts())


def labels_handler(
    store: LabelStore,
    early_skip_ms: int = 30_000,
    on_labels: Callable[[int], None] = lambda _new: None,
) -> Handler:
    async def handle(deliveries: Sequence[Delivery]) -> None:
        labels = [
            (d.event.event_id, d.event.prompt_key, label)
            for d in deliveries
            if (label := label_of(d.event, early_skip_ms)) is not None
        ]
        if labels:
            on_labels(await store.count(labels))

    return handle
