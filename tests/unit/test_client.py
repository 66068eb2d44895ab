"""The client SDK's retries, ETag revalidation and event batching, over httpx's
MockTransport (the real server is in tests/e2e/test_client_sdk.py)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from client import (
    ApiError,
    AsyncPlaylistClient,
    Event,
    PlaylistClient,
    RetryPolicy,
    Unavailable,
)

PLAYLIST = {
    "tracks": [{"id": "t1", "title": "A", "artist": "B", "score": 0.9}],
    "prompt": "rainy jazz",
    "slots": {},
    "n": 1,
    "version": "v1",
    "fingerprint": "fp1",
    "degraded": False,
    "prompt_key": "pk1",
}
PROBLEM_503 = {"type": "/problems/overloaded", "title": "Overloaded", "status": 503, "detail": ""}


def _client(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: object
) -> tuple[PlaylistClient, list[float]]:
    slept: list[float] = []
    client = PlaylistClient(
        "http://edge",
        transport=httpx.MockTransport(handler),
        sleep=slept.append,
        rng=random.Random(7),
        **kwargs,  # type: ignore[arg-type]
    )
    return client, slept


def _event(number: int) -> Event:
    return Event(
        event_id=f"evt-{number:06d}",
        type="play",
        playlist="fp1",
        prompt_key="pk1",
        track_id="t1",
        position=0,
        ts=datetime(2026, 11, 23, tzinfo=UTC),
        user="listener-1",
    )


def test_overload_is_retried_with_the_servers_retry_after() -> None:
    """503 then 429 are retried (waiting what Retry-After says), then the answer is typed."""
    replies = iter(
        [
            httpx.Response(503, json=PROBLEM_503, headers={"retry-after": "2"}),
            httpx.Response(429, json=PROBLEM_503, headers={"retry-after": "1"}),
            httpx.Response(200, json=PLAYLIST, headers={"etag": '"fp1"', "x-cache": "MISS"}),
        ]
    )
    client, slept = _client(lambda request: next(replies))
    playlist = client.playlist("rainy jazz", n=1)
    assert slept == [2.0, 1.0]
    assert playlist.tracks[0].id == "t1"
    assert playlist.cache.tier == "MISS"


def test_without_retry_after_the_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(attempts=6, base=0.1, cap=0.5)
    rng = random.Random(3)
    waits = [policy.delay(retry, None, rng) for retry in range(1, 6)]
    assert all(0 <= wait <= min(0.5, 0.1 * 2**n) for n, wait in enumerate(waits, 1))
    assert len(set(waits)) == len(waits)  # jittered, not a fixed schedule
    assert policy.delay(1, "600", rng) == policy.max_retry_after


def test_a_bad_request_is_not_retried_and_says_why() -> None:
    problem = {
        "type": "/problems/bad-request",
        "title": "Bad request",
        "status": 400,
        "detail": "n",
    }
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(400, json=problem)

    client, slept = _client(handler)
    with pytest.raises(ApiError) as raised:
        client.playlist("x", n=10_000)
    assert (raised.value.status, raised.value.problem.detail) == (400, "n")
    assert len(calls) == 1
    assert slept == []


def test_an_unreachable_edge_is_tried_every_time_then_reported() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client, slept = _client(handler, retry=RetryPolicy(attempts=3))
    with pytest.raises(Unavailable):
        client.playlist("x")
    assert len(slept) == 2


def test_a_playlist_is_revalidated_with_its_etag() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("if-none-match"))
        if request.headers.get("if-none-match") == '"fp1"':
            return httpx.Response(304, headers={"etag": '"fp1"'})
        return httpx.Response(200, json=PLAYLIST, headers={"etag": '"fp1"'})

    client, _ = _client(handler)
    first = client.playlist("rainy jazz", moods=["calm"])
    again = client.playlist("rainy jazz", moods=["calm"])
    assert seen == [None, '"fp1"']
    assert (first.not_modified, again.not_modified) == (False, True)
    assert again.tracks == first.tracks


def test_personal_playlists_are_posted_and_never_revalidated() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert "if-none-match" not in request.headers
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=PLAYLIST, headers={"etag": '"fp1"'})

    client, _ = _client(handler)
    client.playlist("rainy jazz", user="listener-1")
    client.playlist("rainy jazz", user="listener-1")
    assert bodies[0]["user"] == "listener-1"
    assert bodies[0]["schema_version"] == 1


def test_events_go_in_batches_and_the_rest_on_close() -> None:
    batches: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        events = json.loads(request.content)["events"]
        batches.append(len(events))
        return httpx.Response(200, json={"accepted": len(events), "duplicates": 0, "ids": []})

    client, _ = _client(handler, batch=10, buffer=100)
    with client:
        for number in range(25):
            client.track(_event(number))
        assert batches == [10, 10]
    assert batches == [10, 10, 5]


def test_unsent_events_are_kept_within_the_bound_and_sent_later() -> None:
    up = False
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if not up:
            return httpx.Response(503, json=PROBLEM_503)
        events = json.loads(request.content)["events"]
        sent.extend(e["event_id"] for e in events)
        return httpx.Response(200, json={"accepted": len(events), "duplicates": 0, "ids": []})

    client, _ = _client(handler, batch=2, buffer=3, retry=RetryPolicy(attempts=2))
    client.track(_event(0))
    with pytest.raises(ApiError):
        client.track(_event(1))  # the batch of two could not go: kept
    assert len(client.events) == 2
    with pytest.raises(ApiError):
        client.track(_event(2))  # three kept: the bound
    client.events.add(_event(3))  # a fourth pushes the oldest out
    assert (len(client.events), client.events.dropped) == (3, 1)
    up = True
    client.close()
    assert sent == ["evt-000001", "evt-000002", "evt-000003"]


def test_a_rejected_batch_is_not_sent_again() -> None:
    problem = {"type": "/problems/invalid-events", "title": "Invalid", "status": 400, "detail": ""}
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json=problem)

    client, _ = _client(handler, batch=1, buffer=10)
    with pytest.raises(ApiError):
        client.track(_event(0))
    assert len(client.events) == 0
    client.close()
    assert len(calls) == 1


async def test_the_async_client_retries_and_batches_the_same_way() -> None:
    replies = iter(
        [
            httpx.Response(503, json=PROBLEM_503, headers={"retry-after": "0.5"}),
            httpx.Response(200, json=PLAYLIST, headers={"etag": '"fp1"'}),
        ]
    )
    batches: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/events":
            events = json.loads(request.content)["events"]
            batches.append(len(events))
            return httpx.Response(200, json={"accepted": len(events), "duplicates": 0, "ids": []})
        return next(replies)

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with AsyncPlaylistClient(
        "http://edge", transport=httpx.MockTransport(handler), sleep=sleep, batch=4
    ) as client:
        playlist = await client.playlist("rainy jazz")
        for number in range(6):
            await client.track(
                Event.about(playlist, 0, "play", user="u", event_id=f"e{number:07d}")
            )
    assert slept == [0.5]
    assert batches == [4, 2]
