"""A failing Redis (or SQLite file) reaches the code above the drivers as one error of the tree.

`DeadRedis` stands in for a client whose server refuses connections: every command, pipeline
and script fails with redis-py's ConnectionError, as it does against a dead port.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from edge.doctor import check_clock, check_events, check_global_writable, check_redis
from edge.errors import EventLogUnavailable
from edge.events import EventsPipeline
from edge.metrics import Metrics
from edge.settings import EdgeSettings
from regional.connections import translate_redis_errors
from regional.consumers import RedisLabelStore, RedisSessionStore
from regional.errors import LogUnavailable, StoreUnavailable
from regional.events import Entry, Event, LocalEventLog, RedisEventLog
from regional.invalidation import InvalidationBus
from regional.popular import RegionalTopK

REFUSED = "Error 111 connecting to 127.0.0.1:1. Connection refused."


def _refuse() -> RedisConnectionError:
    return RedisConnectionError(REFUSED)


class _DeadPipeline:
    async def __aenter__(self) -> _DeadPipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None  # commands queue; `execute` is what fails

    async def execute(self) -> list[Any]:
        raise _refuse()


class _DeadPubSub:
    async def __aenter__(self) -> _DeadPubSub:
        raise _refuse()

    async def __aexit__(self, *exc: object) -> None:
        return None


class DeadRedis:
    """A client of a Redis that refuses every connection."""

    def pipeline(self, transaction: bool = True) -> _DeadPipeline:
        return _DeadPipeline()

    def pubsub(self) -> _DeadPubSub:
        return _DeadPubSub()

    def register_script(self, script: str) -> Callable[..., Awaitable[Any]]:
        async def run(keys: object = (), args: object = (), client: object = None) -> Any:
            raise _refuse()

        return run

    async def aclose(self) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        async def command(*args: object, **kwargs: object) -> Any:
            raise _refuse()

        return command


def _dead() -> Any:
    return DeadRedis()


def _event(event_id: str = "evt-00000001") -> Event:
    return Event(
        event_id=event_id,
        type="skip",
        playlist="pl",
        prompt_key="pk",
        track_id="t1",
        position=0,
        dwell_ms=1000,
        client_ms=0,
        user="u",
        prompt="",
        region="r1",
        received_ms=0,
    )


def _from_refusal(raised: pytest.ExceptionInfo[BaseException]) -> None:
    assert isinstance(raised.value.__cause__, RedisConnectionError)


def test_translation_raises_the_tree_error_from_the_driver_error() -> None:
    """What redis-py raises becomes the error named (StoreUnavailable by default), with the
    driver's error as its cause and in its message."""
    expected = "popular prompts: ConnectionError: Connection refused"
    with (
        pytest.raises(StoreUnavailable, match=expected) as raised,
        translate_redis_errors("popular prompts"),
    ):
        raise RedisConnectionError("Connection refused")
    _from_refusal(raised)
    with pytest.raises(StoreUnavailable, match=r"^x: TimeoutError$"), translate_redis_errors("x"):
        raise TimeoutError
    with pytest.raises(LogUnavailable), translate_redis_errors("log", LogUnavailable):
        raise OSError("reset by peer")


def test_translation_leaves_other_errors_and_cancellation_alone() -> None:
    """A bug is not a Redis failure, and a cancellation (an expiring timeout) passes through."""
    with pytest.raises(KeyError), translate_redis_errors("x"):
        raise KeyError("not Redis's doing")
    with pytest.raises(asyncio.CancelledError), translate_redis_errors("x"):
        raise asyncio.CancelledError


async def test_the_regions_popular_prompts_fail_as_store_unavailable() -> None:
    """Merging counts into, or reading the top of, a dead Redis raises StoreUnavailable."""
    from cache.popularity import Counted

    topk = RegionalTopK(_dead(), "r1")
    with pytest.raises(StoreUnavailable) as raised:
        await topk.top(10)
    _from_refusal(raised)
    with pytest.raises(StoreUnavailable):
        await topk.merge([Counted("k", 3, b"spec")])


async def test_the_session_and_label_stores_fail_as_store_unavailable() -> None:
    """Every call of the Redis session and label stores raises StoreUnavailable."""
    sessions = RedisSessionStore(_dead(), "r1")
    labels = RedisLabelStore(_dead(), "r1")
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: sessions.update({"u": (["t1"], [])}),
        lambda: sessions.skipped("u"),
        lambda: sessions.played("u"),
        lambda: labels.count([("evt-1", "pk", "accept")]),
        lambda: labels.get("pk"),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable) as raised:
            await call()
        _from_refusal(raised)


async def test_the_redis_event_log_fails_as_log_unavailable() -> None:
    """Append, read, pending, claim, ack, trim, length and groups on a dead Redis raise
    LogUnavailable (a StoreUnavailable, so a consumer waits for the log)."""
    log = RedisEventLog(_dead(), "r1", partitions=2)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: log.append([_event()]),
        lambda: log.ensure_group("labels"),
        lambda: log.read("labels", "node-1", 10),
        lambda: log.pending("labels", "node-1", 10),
        lambda: log.claim("labels", "node-1", 1000, 10),
        lambda: log.ack("labels", [Entry(0, "1-0", None)]),
        lambda: log.trim(0, "1-0", 0),
        lambda: log.length(),
    ]
    for call in calls:
        with pytest.raises(LogUnavailable) as raised:
            await call()
        _from_refusal(raised)
    assert issubclass(LogUnavailable, StoreUnavailable)


async def test_the_sqlite_event_log_fails_as_log_unavailable(tmp_path: Path) -> None:
    """A database the embedded log can no longer use raises LogUnavailable from sqlite3's
    error, as the Redis log does from redis-py's."""
    log = LocalEventLog(tmp_path / "events.sqlite")
    log._db.close()
    with pytest.raises(LogUnavailable) as raised:
        await log.append([_event()])
    assert isinstance(raised.value.__cause__, sqlite3.Error)
    with pytest.raises(LogUnavailable):
        await log.read("labels", "node-1", 10)


async def test_a_batch_the_log_cannot_take_is_refused_with_503(tmp_path: Path) -> None:
    """POST /v1/events' pipeline answers a failing embedded log with EventLogUnavailable
    (503, Retry-After), raised from the log's LogUnavailable."""
    settings = EdgeSettings(
        data_dir=str(tmp_path), events_url="", l2_url="", archive_dir="none", event_consumers=False
    )
    pipeline = EventsPipeline.build(settings, Metrics(), "node-1", lambda: 1_000_000.0)
    assert pipeline is not None
    assert isinstance(pipeline.log, LocalEventLog)
    pipeline.log._db.close()
    body = msgspec.json.encode(
        {
            "events": [
                {
                    "event_id": "evt-00000001",
                    "type": "skip",
                    "playlist": "pl",
                    "prompt_key": "pk",
                    "track_id": "t1",
                    "position": 0,
                    "ts": datetime(2026, 1, 1, tzinfo=UTC).isoformat(),
                    "user": "listener-1",
                }
            ]
        }
    )
    with pytest.raises(EventLogUnavailable) as raised:
        await pipeline.ingest(body)
    assert raised.value.status == 503
    assert raised.value.retry_after == 1
    assert isinstance(raised.value.__cause__, LogUnavailable)


async def test_the_invalidation_bus_reports_a_dead_redis_as_a_lost_subscription() -> None:
    """Publishing to a dead Redis is refused (False), and following the channel fails with
    StoreUnavailable, which the listener treats as a lost subscription, not a bug."""

    async def nothing(*_args: object) -> None:
        return None

    bus = InvalidationBus(_dead(), channel="edge:r1:invalidate", apply=nothing, reset=nothing)
    assert await bus.publish(keys=("k",)) is False
    with pytest.raises(StoreUnavailable) as raised:
        await bus._follow(lost=False)
    _from_refusal(raised)
    assert bus.subscribed is False


async def test_the_doctor_reports_a_dead_redis_with_the_drivers_reason(tmp_path: Path) -> None:
    """Each Redis check fails with what the driver said, as before the translation."""
    settings = EdgeSettings(data_dir=str(tmp_path), events_url="redis://127.0.0.1:1")
    lines = [
        await check_redis("l2", _dead(), 50.0),
        await check_global_writable(settings, _dead()),
        await check_events(settings, _dead()),
        await check_clock(_dead()),
    ]
    assert [line.verdict for line in lines] == ["FAIL"] * 4
    assert lines[0].detail == f"unreachable: {REFUSED}"
    assert all(line.detail.endswith(REFUSED) for line in lines)
