"""The edge's side of listener events: validate and ingest batches, run the region's consumers.

`POST /v1/events` takes a batch of up to `events_max_batch` events. A batch is all or
nothing: if any event is invalid, none is stored and the problem+json response lists every
bad one by index, so a client can fix and re-send the whole batch without working out which
of its events got in (re-sending accepted events is harmless anyway: `event_id`s are
deduplicated). Accepted events are pseudonymized (`regional.events.Pseudonymizer`) and
appended to the region's log; the response says how many were new, how many duplicates, and
each one's log id (null for a duplicate).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from cache.tasks import cancel_and_wait
from edge.errors import BadRequest, EventLogUnavailable, InvalidEvents
from edge.metrics import Metrics
from edge.settings import EdgeSettings
from regional.archive import Archiver
from regional.connections import redis_client
from regional.consumers import (
    Consumer,
    Handler,
    LabelStore,
    MemoryLabelStore,
    MemorySessionStore,
    RedisLabelStore,
    RedisSessionStore,
    SessionStore,
    labels_handler,
    session_handler,
)
from regional.errors import LogUnavailable
from regional.events import (
    Delivery,
    EventIn,
    EventLog,
    LocalEventLog,
    Pseudonymizer,
    RedisEventLog,
    load_or_make_key,
)

log = logging.getLogger("edge.events")

_batch = msgspec.json.Decoder(dict[str, list[msgspec.Raw]])
_event = msgspec.json.Decoder(EventIn)

APPEND_TIMEOUT = 2.0
"""Seconds an append to the log may take before the batch is refused with 503."""


def user_hash_key(settings: EdgeSettings) -> bytes:
    """The region's user-hash key: from settings, else the node's own key file (made once)."""
    key = settings.user_hash_key.encode()
    return key or load_or_make_key(Path(settings.data_dir) / "user-hash.key")


class EventsPipeline:
    """The region's event log as this node sees it, and the consumers it runs."""

    def __init__(
        self,
        log_: EventLog,
        pseudonymizer: Pseudonymizer,
        sessions: SessionStore,
        labels: LabelStore,
        *,
        settings: EdgeSettings,
        metrics: Metrics,
        node_id: str,
        archiver: Archiver | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log_
        self._clock = clock
        self.pseudonymizer = pseudonymizer
        self.sessions = sessions
        self.labels = labels
        self.settings = settings
        self.metrics = metrics
        self.archiver = archiver
        self.consumers: list[Consumer] = []
        if settings.event_consumers:
            self.consumers = [
                Consumer(
                    log_,
                    "session",
                    node_id,
                    self._timed("session", session_handler(sessions, settings.early_skip_ms)),
                ),
                Consumer(
                    log_,
                    "labels",
                    node_id,
                    self._timed(
                        "labels",
                        labels_handler(
                            labels,
                            settings.early_skip_ms,
                            on_labels=metrics.event_labels.inc,
                        ),
                    ),
                ),
            ]
        self._tasks: list[asyncio.Task[None]] = []

    def _timed(self, group: str, handle: Handler) -> Handler:
        """`handle`, reporting how old the oldest event of each batch is when it is handled."""
        gauge = self.metrics.event_lag.labels(group)

        async def handled(deliveries: Sequence[Delivery]) -> None:
            await handle(deliveries)
            oldest = min(d.event.received_ms for d in deliveries)
            gauge.set(max(0.0, self._clock() - oldest / 1000))

        return handled

    @classmethod
    def build(
        cls, settings: EdgeSettings, metrics: Metrics, node_id: str, clock: Callable[[], float]
    ) -> EventsPipeline | None:
        s = settings
        if s.events_url == "none":
            return None
        url = s.events_url or s.l2_url
        data = Path(s.data_dir)
        pseudonymizer = Pseudonymizer(user_hash_key(s), s.region, clock)
        events: EventLog
        sessions: SessionStore
        labels: LabelStore
        if url:
            client = redis_client(url, timeout=APPEND_TIMEOUT)
            events = RedisEventLog(
                client,
                s.region,
                partitions=s.events_partitions,
                maxlen=s.events_maxlen,
                dedupe_seconds=s.events_dedupe_seconds,
            )
            sessions = RedisSessionStore(client, s.region, ttl=s.session_ttl, clock=clock)
            labels = RedisLabelStore(client, s.region, dedupe_seconds=s.events_dedupe_seconds)
        else:
            events = LocalEventLog(
                data / "events.sqlite",
                dedupe_seconds=s.events_dedupe_seconds,
                sync=s.events_sync,
                clock=clock,
            )
            sessions = MemorySessionStore(ttl=s.session_ttl, clock=clock)
            labels = MemoryLabelStore()
        archiver = None
        # One archiver per region (its checkpoints assume it reads each partition in order):
        # with a shared Redis log only where asked for.
        if s.archive_dir != "none" and (s.archive_dir or not url):
            out = Path(s.archive_dir) if s.archive_dir else data / "archive"
            archiver = Archiver(events, out, s.region, retention=s.archive_retention, clock=clock)
        return cls(
            events,
            pseudonymizer,
            sessions,
            labels,
            settings=s,
            metrics=metrics,
            node_id=node_id,
            archiver=archiver,
            clock=clock,
        )

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        runners = [c.run for c in self.consumers]
        if self.archiver is not None:
            runners.append(self.archiver.run)
        self._tasks = [loop.create_task(run()) for run in runners]

    async def close(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)
        await self.log.close()

    async def ingest(self, body: bytes) -> dict[str, Any]:
        """Validate a batch, store its new events; the response document."""
        try:
            raw = _batch.decode(body)
        except msgspec.DecodeError as exc:
            raise BadRequest(f'the body must be {{"events": [...]}}: {exc}') from exc
        items = raw.get("events")
        if set(raw) != {"events"} or not items:
            raise BadRequest('send {"events": [...]} with at least one event and nothing else')
        limit = self.settings.events_max_batch
        if len(items) > limit:
            raise BadRequest(f"a batch holds at most {limit} events, not {len(items)}")
        good: list[EventIn] = []
        errors: list[dict[str, str | int]] = []
        for index, item in enumerate(items):
            try:
                good.append(_event.decode(item))
            except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
                errors.append({"index": index, "detail": str(exc)})
        if errors:
            raise InvalidEvents(
                f"{len(errors)} of {len(items)} events are invalid; none was stored", errors
            )
        stored = [self.pseudonymizer.stored(event) for event in good]
        started = time.perf_counter()
        try:
            async with asyncio.timeout(APPEND_TIMEOUT):
                ids = await self.log.append(stored)
        except (LogUnavailable, TimeoutError) as exc:  # the client sends the batch again
            log.warning("events not stored", extra={"events": len(stored), "error": repr(exc)})
            raise EventLogUnavailable("the event log is unavailable; send the batch again") from exc
        self.metrics.event_append.observe(time.perf_counter() - started)
        accepted = sum(entry is not None for entry in ids)
        self.metrics.events.labels("accepted").inc(accepted)
        self.metrics.events.labels("duplicate").inc(len(ids) - accepted)
        return {"accepted": accepted, "duplicates": len(ids) - accepted, "ids": ids}
