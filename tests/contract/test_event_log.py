"""Both event logs (Redis Streams, embedded SQLite) keep the same contract."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from loadtest.redis_server import RedisServer
from regional.consumers import Consumer
from regional.events import (
    Delivery,
    Event,
    EventIn,
    EventLog,
    LocalEventLog,
    Pseudonymizer,
    RedisEventLog,
    id_order,
)
from tests.clock import FakeClock

KEY = b"k" * 32


@pytest.fixture(params=["local", "redis"])
async def log(
    request: pytest.FixtureRequest, clock: FakeClock, tmp_path: Path
) -> AsyncIterator[EventLog]:
    made: EventLog
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("contract_redis")
        client = Redis.from_url(server.url)
        await client.flushdb()
        made = RedisEventLog(client, "r1", partitions=4)
    else:
        made = LocalEventLog(tmp_path / "events.sqlite", clock=clock)
    await made.ensure_group("session")
    await made.ensure_group("archive")
    yield made
    await made.close()


def _event(n: int, user: str = "listener-1") -> Event:
    sent = EventIn(
        event_id=f"event-{n:04d}",
        type="skip",
        playlist="fp123",
        prompt_key="pk1",
        track_id=f"t{n}",
        position=n,
        dwell_ms=1200,
        ts=datetime(2026, 11, 23, 12, 0, tzinfo=UTC),
        user=user,
    )
    return Pseudonymizer(KEY, "r1").stored(sent)


async def test_duplicates_are_accepted_once(log: EventLog) -> None:
    ids = await log.append([_event(1), _event(2), _event(1)])
    assert ids[0] is not None and ids[1] is not None  # noqa: PT018
    assert ids[2] is None
    assert await log.append([_event(2)]) == [None]  # a re-sent batch
    assert await log.length() == 2


async def test_each_group_gets_every_event_once_in_order(log: EventLog) -> None:
    await log.append([_event(n) for n in range(5)])
    first = await log.read("session", "edge-a", count=3)
    rest = await log.read("session", "edge-b", count=10)
    assert await log.read("session", "edge-a", count=10) == []
    got = [d.event.event_id for d in first + rest]
    assert sorted(got) == [f"event-{n:04d}" for n in range(5)]
    same_partition = [d.id for d in first + rest if d.partition == first[0].partition]
    assert same_partition == sorted(same_partition, key=id_order)
    archive = await log.read("archive", "archiver", count=10)
    assert len(archive) == 5  # another group reads the same events again


async def test_unacked_events_stay_pending_and_can_be_claimed(
    log: EventLog, clock: FakeClock
) -> None:
    await log.append([_event(n) for n in range(3)])
    held = await log.read("session", "crashed", count=10)
    assert len(held) == 3
    await log.ack("session", held[:1])
    assert [d.id for d in await log.pending("session", "crashed", 10)] == [d.id for d in held[1:]]
    clock.advance(60)
    claimed = await log.claim("session", "survivor", min_idle_ms=0, count=10)
    assert sorted(d.event.event_id for d in claimed) == sorted(d.event.event_id for d in held[1:])
    await log.ack("session", claimed)
    assert await log.pending("session", "survivor", 10) == []
    assert await log.claim("session", "survivor", min_idle_ms=0, count=10) == []


async def test_trim_drops_archived_entries_older_than_the_horizon(log: EventLog) -> None:
    await log.append([_event(n) for n in range(4)])
    got = await log.read("archive", "archiver", count=10)
    partition = got[0].partition
    mine = sorted((d.id for d in got if d.partition == partition), key=id_order)
    later = 2**62  # every entry is older than this
    assert await log.trim(partition, mine[0], before_ms=0) == 0  # none old enough yet
    assert await log.trim(partition, mine[-2], before_ms=later) == len(mine) - 1
    assert await log.length() == 4 - (len(mine) - 1)


async def test_one_users_events_share_a_partition(log: EventLog) -> None:
    users = {_event(n, user="same-user").user for n in range(3)}
    assert len(users) == 1
    (user,) = users
    assert 0 <= log.partition_of(user) < log.partitions
    other = _event(0, user="someone-else").user
    assert other != user


async def test_a_regions_events_stay_in_its_own_streams(contract_redis: RedisServer) -> None:
    client = Redis.from_url(contract_redis.url)
    await client.flushdb()
    one, two = RedisEventLog(client, "r1"), RedisEventLog(client, "r2")
    await one.ensure_group("session")
    await two.ensure_group("session")
    await one.append([_event(1)])
    assert await two.read("session", "edge", count=10) == []
    assert [d.event.region for d in await one.read("session", "edge", count=10)] == ["r1"]
    async for key in client.scan_iter(match="events:*"):
        assert key.startswith((b"events:{r1:", b"events:{r2:"))
    await client.aclose()


async def _store_garbage(log: EventLog) -> None:
    """Bytes in the log that are not an event (a bad writer, a schema from the future)."""
    if isinstance(log, RedisEventLog):
        await log.client.xadd("events:{r1:0}", {"e": b"\xff not json"})
    else:
        assert isinstance(log, LocalEventLog)
        log._db.execute("INSERT INTO events (ms, body) VALUES (0, x'ff00')")


async def test_an_unreadable_entry_is_acked_and_skipped_not_retried(log: EventLog) -> None:
    await log.append([_event(1)])
    await _store_garbage(log)
    await log.append([_event(2)])
    handled: list[str] = []

    async def handle(deliveries: Sequence[Delivery]) -> None:
        handled.extend(d.event.event_id for d in deliveries)

    consumer = Consumer(log, "session", "edge-a", handle)
    while await consumer.run_once():
        pass
    assert sorted(handled) == ["event-0001", "event-0002"]
    assert consumer.unreadable == 1
    assert await log.pending("session", "edge-a", 10) == []
