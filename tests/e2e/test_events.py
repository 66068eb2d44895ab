"""POST /v1/events over the real app: validation, idempotency, privacy, and the loop back into
personalized playlists through the region's log (real redis-server) or the embedded log."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from edge.refresh import PromptSpec
from edge.schemas import PlaylistRequest
from loadtest.redis_server import RedisServer
from models.intent import Slots

from .conftest import Client, ClientFactory, service_of, wait_until

_ids = itertools.count()


def event(**overrides: Any) -> dict[str, Any]:
    base = {
        "event_id": f"evt-{next(_ids):06d}",
        "type": "play",
        "playlist": "fp0",
        "prompt_key": "pk0",
        "track_id": "t0",
        "position": 0,
        "dwell_ms": 0,
        "ts": "2026-11-23T10:00:00+00:00",
        "user": "listener-1",
    }
    return {**base, **overrides}


async def _post(client: Client, events: list[dict[str, Any]]) -> Any:
    return await client.post("/v1/events", json={"events": events})


async def test_a_batch_is_stored_once_however_often_it_is_sent(
    edge: ClientFactory, tmp_path: Path
) -> None:
    async with edge(data_dir=str(tmp_path), archive_dir="none") as client:
        batch = [event(), event(type="skip", dwell_ms=4000), event(type="complete")]
        first = await _post(client, batch)
        assert first.status_code == 200, first.text
        assert first.headers["cache-control"] == "no-store"
        doc = first.json()
        assert (doc["accepted"], doc["duplicates"]) == (3, 0)
        assert all(isinstance(i, str) for i in doc["ids"])
        again = (await _post(client, [*batch, event()])).json()
        assert (again["accepted"], again["duplicates"]) == (1, 3)
        assert again["ids"][:3] == [None, None, None]
        assert await client.app.node.events.log.length() == 4  # type: ignore[union-attr]
        metrics = (await client.get("/metrics")).text
        assert 'edge_requests_total{route="/v1/events",status="200"} 2.0' in metrics
        assert 'edge_events_total{outcome="duplicate"} 3.0' in metrics


async def test_one_bad_event_rejects_the_batch_and_each_bad_one_is_listed(
    edge: ClientFactory, tmp_path: Path
) -> None:
    settings = {"archive_dir": "none", "events_max_batch": 5, "events_max_bytes": 4096}
    async with edge(data_dir=str(tmp_path), **settings) as client:
        batch = [
            event(),
            event(type="explode"),
            event(),
            event(position=-1, ts="yesterday"),
            event(unknown=1),
        ]
        bad = await _post(client, batch)
        assert bad.status_code == 400
        assert bad.headers["content-type"].startswith("application/problem+json")
        problem = bad.json()
        assert [e["index"] for e in problem["errors"]] == [1, 3, 4]
        assert "type" in problem["errors"][0]["detail"]
        assert "none was stored" in problem["detail"]
        assert await client.app.node.events.log.length() == 0  # type: ignore[union-attr]
        for body, status in (
            ({"events": [event() for _ in range(6)]}, 400),  # over the batch bound
            ({"events": []}, 400),
            ({"events": [event()], "extra": []}, 400),
            ([event()], 400),
        ):
            response = await client.post("/v1/events", json=body)
            assert response.status_code == status, body
        too_big = await client.post(
            "/v1/events",
            content=b'{"events": ["' + b"x" * 5000 + b'"]}',
            headers={"content-type": "application/json"},
        )
        assert too_big.status_code == 413
        text = await client.post("/v1/events", content=b"x", headers={"content-type": "text/plain"})
        assert text.status_code == 415
        not_json = await client.post(
            "/v1/events", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 400


async def test_early_skips_leave_the_listeners_next_playlists_and_nobody_elses(
    edge: ClientFactory, redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = {"l2_url": redis_server.url, "data_dir": str(tmp_path), "archive_dir": "none"}
    async with edge(**settings) as one, edge(**settings) as two:
        body = {"schema_version": 1, "prompt": "mellow jazz for reading", "n": 10}
        shared = (await one.post("/v1/playlists", json=body)).json()
        skipped = [t["id"] for t in shared["tracks"][:3]]
        events = [
            event(
                type="skip",
                dwell_ms=3000,
                track_id=track,
                playlist=shared["fingerprint"],
                prompt_key=shared["prompt_key"],
                user="listener-9",
                prompt="mellow jazz, mail me at jo@example.com",
            )
            for track in skipped
        ]
        events.append(event(type="skip", dwell_ms=95_000, track_id=shared["tracks"][5]["id"]))
        assert (await _post(one, events)).json()["accepted"] == 4

        async def personalised_on_the_other_edge() -> bool:
            mine = await two.post("/v1/playlists", json={**body, "user": "listener-9"})
            ids = [t["id"] for t in mine.json()["tracks"]]
            return len(ids) == 10 and not set(skipped) & set(ids)

        await wait_until(personalised_on_the_other_edge)
        other = await two.post("/v1/playlists", json={**body, "user": "listener-10"})
        assert [t["id"] for t in other.json()["tracks"]] == [t["id"] for t in shared["tracks"]]
        again = await two.get("/v1/playlists?q=mellow+jazz+for+reading&n=10")
        assert [t["id"] for t in again.json()["tracks"]] == [t["id"] for t in shared["tracks"]]

        raw = Redis.from_url(redis_server.url)
        stored = b""
        async for key in raw.scan_iter(match="events:*"):
            if await raw.type(key) == b"stream":
                for _id, fields in await raw.xrange(key):
                    stored += fields[b"e"]
        await raw.aclose()
        assert b"listener-9" not in stored  # the token never reaches the log
        assert b"jo@example.com" not in stored
        assert b"[email]" in stored


async def test_labels_count_each_event_once_and_keep_rejected_prompts_out_of_prewarm(
    edge: ClientFactory, tmp_path: Path
) -> None:
    async with edge(data_dir=str(tmp_path), archive_dir="none", admin_key="s3cret") as client:
        node = client.app.node
        service = service_of(client)
        spec = PromptSpec("sad songs for a party", Slots(), 10)
        intent, _key = service.intent(PlaylistRequest(spec.prompt, None, spec.n))
        bad_key = intent.prompt_key()
        labels = [
            event(type="skip", dwell_ms=1000, prompt_key=bad_key, track_id=f"t{i}")
            for i in range(6)
        ] + [event(type="complete", prompt_key="pk-good")]
        await _post(client, labels)
        store = node.events.labels  # type: ignore[union-attr]

        async def counted() -> bool:
            return (await store.get(bad_key)).reject == 6

        await wait_until(counted)
        assert (await store.get("pk-good")).accept == 1
        await _post(client, labels)  # a re-sent batch is not counted again
        await asyncio.sleep(0.5)
        assert (await store.get(bad_key)).reject == 6
        assert not (await store.get("pk-good")).mostly_rejected()
        metrics = (await client.get("/metrics")).text
        assert "edge_event_labels_total 7.0" in metrics
        shown = await client.get(
            f"/admin/labels/{bad_key}", headers={"authorization": "Bearer s3cret"}
        )
        assert shown.json() == {
            "prompt_key": bad_key,
            "rules": 1,
            "accept": 0,
            "reject": 6,
            "mostly_rejected": True,
        }
        assert (await client.get(f"/admin/labels/{bad_key}")).status_code == 401
        other = PromptSpec("happy songs for a party", Slots(), 10)
        wanted = [("k1", msgspec.json.encode(spec)), ("k2", msgspec.json.encode(other))]
        done = await service.warm.prewarm(wanted, seconds=10)
        assert (done["rejected"], done["computed"]) == (1, 1)
