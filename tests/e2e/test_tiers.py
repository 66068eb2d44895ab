"""Edges sharing a region: L2 on a real redis-server, the global store on disk, faults."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import msgspec
import pytest
from redis.asyncio import Redis

from cache.writebehind import WriteBehind
from loadtest.redis_server import RedisServer
from models.errors import EncoderError
from tests.clock import FakeClock

from .conftest import Client, ClientFactory, break_encoder, service_of, wait_until


@pytest.fixture
def redis(redis_server: RedisServer) -> RedisServer:
    return redis_server


def _url(prompt: str) -> str:
    return "/v1/playlists?" + urlencode({"q": prompt, "n": 10})


def _tracks(body: bytes) -> list[str]:
    doc = msgspec.json.decode(body)
    return [t["id"] for t in doc["tracks"]]


async def _flush_global(client: Client) -> None:
    for tier in service_of(client).cache.tiers:
        if isinstance(tier, WriteBehind):
            await tier.flush()


def _fast_breaker(url: str) -> dict[str, object]:
    return {
        "l2_url": url,
        "remote_timeout_ms": 100.0,
        "breaker_min_calls": 2,
        "breaker_open_seconds": 0.3,
    }


async def test_second_edge_gets_first_edges_answer_from_l2(
    edge: ClientFactory, redis: RedisServer
) -> None:
    async with edge(l2_url=redis.url) as one, edge(l2_url=redis.url) as two:
        first = await one.get(_url("late night lofi for studying"))
        assert first.headers["x-cache"] == "MISS"
        second = await two.get(_url("late night lofi for studying"))
        assert second.headers["x-cache"] == "HIT-L2"
        assert second.headers["etag"] == first.headers["etag"]
        assert _tracks(second.content) == _tracks(first.content)
        assert second.content == first.content
        # Promoted: edge two now answers from its own L1.
        third = await two.get(_url("late night lofi for studying"))
        assert third.headers["x-cache"] == "HIT-L1"


async def test_redis_down_costs_nothing_but_latency(
    edge: ClientFactory, redis: RedisServer
) -> None:
    async with edge(**_fast_breaker(redis.url)) as one:
        known = await one.get(_url("happy pop for running"))
        assert known.status_code == 200
        redis.stop()
        for prompt in ("happy pop for running", "sad piano at night", "angry metal", "calm folk"):
            response = await one.get(_url(prompt))
            assert response.status_code == 200, response.text
        ready = await one.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["tiers"]["l2"] == "down"
        metrics = (await one.get("/metrics")).text
        assert 'edge_cache_total{kind="error",tier="l2"}' in metrics
        assert 'edge_breaker_state{tier="l2"} 2.0' in metrics


async def test_l2_is_used_again_after_redis_returns(
    edge: ClientFactory, redis: RedisServer
) -> None:
    async with edge(**_fast_breaker(redis.url)) as one, edge(**_fast_breaker(redis.url)) as two:
        redis.stop()
        assert (await one.get(_url("dreamy shoegaze"))).status_code == 200
        redis.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        attempt = 0
        while True:
            attempt += 1
            prompt = f"dreamy shoegaze {attempt}0s"
            await one.get(_url(prompt))
            if (await two.get(_url(prompt))).headers["x-cache"] == "HIT-L2":
                break
            assert loop.time() < deadline, "L2 not used again within 10 s of Redis returning"
            await asyncio.sleep(0.2)


async def test_global_store_answers_a_new_edge_without_l2(
    edge: ClientFactory, tmp_path: Path
) -> None:
    store = str(tmp_path / "global")
    async with edge(global_url=store) as one:
        first = await one.get(_url("sunny reggae for a road trip"))
        assert first.headers["x-cache"] == "MISS"
        await _flush_global(one)
    async with edge(global_url=store) as two:
        again = await two.get(_url("sunny reggae for a road trip"))
        assert again.headers["x-cache"] == "HIT-GLOBAL"
        assert _tracks(again.content) == _tracks(first.content)


async def test_fallbacks_stay_out_of_shared_tiers(edge: ClientFactory, redis: RedisServer) -> None:
    """A degraded answer is cached on the node that made it, never in L2."""
    async with edge(l2_url=redis.url) as one, edge(l2_url=redis.url) as two:
        service = service_of(one)

        async def broken(*_args: object) -> object:
            raise TimeoutError

        service.compute.generate = broken  # type: ignore[method-assign]
        degraded = await one.get(_url("spooky jazz"))
        assert degraded.headers["x-cache"] == "FALLBACK"
        fresh = await two.get(_url("spooky jazz"))
        assert fresh.headers["x-cache"] == "MISS"


ADMIN = {"authorization": "Bearer s3cret"}


async def _purge(client: Client, body: dict[str, object]) -> dict[str, object]:
    response = await client.post("/admin/purge", json=body, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()  # type: ignore[no-any-return]


async def test_purge_by_track_reaches_every_edge_within_a_second(
    edge: ClientFactory, redis: RedisServer, tmp_path: Path
) -> None:
    """A track pulled on edge one disappears from L2, the global store and edge two's L1."""
    settings = {"l2_url": redis.url, "admin_key": "s3cret", "global_url": str(tmp_path / "g")}
    async with edge(**settings) as one, edge(**settings) as two:
        url = _url("warm acoustic covers for a rainy sunday")
        shared = (await one.get(url)).content
        assert (await two.get(url)).headers["x-cache"] == "HIT-L2"
        assert (await two.get(url)).headers["x-cache"] == "HIT-L1"
        other = _url("fast techno for running")
        other_ids = _tracks((await one.get(other)).content)
        assert (await two.get(other)).headers["x-cache"] == "HIT-L2"
        pulled = next(t for t in _tracks(shared) if t not in other_ids)
        await _flush_global(one)

        result = await _purge(one, {"tracks": [pulled]})
        assert result["published"] is True
        assert result["dropped"] == {"l1": 1, "l2": 1, "global": 1}

        key = service_of(two)._keys[url.split("?")[1].encode()]

        async def gone_from_two() -> bool:
            return service_of(two).l1.peek(key) is None

        await wait_until(gone_from_two, 1.0)
        again = await two.get(url)
        assert again.headers["x-cache"] == "MISS"
        assert (await two.get(other)).headers["x-cache"] == "HIT-L1"  # untouched


async def test_admin_purge_needs_the_admin_key(edge: ClientFactory) -> None:
    async with edge(admin_key="s3cret") as client:
        body = {"tags": ["genre:jazz"]}
        missing = await client.post("/admin/purge", json=body)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.headers["content-type"].startswith("application/problem+json")
        wrong = await client.post("/admin/purge", json=body, headers={"authorization": "Bearer x"})
        assert wrong.status_code == 403
        empty = await client.post("/admin/purge", json={}, headers=ADMIN)
        assert empty.status_code == 400
        spaced = await client.post("/admin/purge", json={"tags": ["a b"]}, headers=ADMIN)
        assert spaced.status_code == 400
        schema = (await client.get("/schema/openapi.json")).json()
        assert not any(path.startswith("/admin") for path in schema["paths"])
    async with edge() as client:
        disabled = await client.post("/admin/purge", json=body, headers=ADMIN)
        assert disabled.status_code == 403


async def test_lost_subscription_flushes_l1_and_resubscribes(
    edge: ClientFactory, redis: RedisServer
) -> None:
    async with edge(**_fast_breaker(redis.url)) as one:
        service = service_of(one)
        assert service.bus is not None
        await one.get(_url("mellow jazz for reading"))
        assert len(service.l1) > 0
        redis.stop()
        await wait_until(lambda: _false_when(service.bus.subscribed), 5.0)
        redis.start()
        await wait_until(lambda: _true_when(service.bus.resets == 1), 10.0)
        assert len(service.l1) == 0
        assert service.bus.subscribed


async def _false_when(value: bool) -> bool:
    return not value


async def _true_when(value: bool) -> bool:
    return value


def _threshold(client: Client, threshold: float) -> None:
    """One threshold for every bucket (the calibrated ones are the artifact's own)."""
    semantic = service_of(client).semantic
    assert semantic is not None
    semantic.index.threshold = threshold
    semantic.index.thresholds.clear()


async def test_one_wording_of_a_request_is_an_exact_hit(edge: ClientFactory) -> None:
    async with edge() as client:
        source = await client.get(_url("jazz for a rainy sunday morning"))
        assert source.headers["x-cache"] == "MISS"
        again = await client.get(_url("Rainy Sunday morning jazz songs"))
        assert again.headers["x-cache"] == "HIT-L1"  # same slots and words: one key
        assert again.content == source.content


async def test_paraphrase_is_a_semantic_hit_and_a_contrast_is_not(edge: ClientFactory) -> None:
    async with edge(semantic_verify_rate=0.0) as client:
        _threshold(client, 0.85)
        source = await client.get(_url("jazz for a rainy sunday morning"))
        assert source.headers["x-cache"] == "MISS"
        paraphrase = await client.get(_url("rainy sunday morning jazz standards"))
        assert paraphrase.headers["x-cache"] == "SEMANTIC"
        assert paraphrase.headers["etag"] == source.headers["etag"]
        doc = msgspec.json.decode(paraphrase.content)
        assert doc["prompt"] == "jazz for a rainy sunday morning"  # served from this prompt
        assert paraphrase.content == source.content
        # The alias makes the paraphrase an exact hit from now on.
        again = await client.get(_url("rainy sunday morning jazz standards"))
        assert again.headers["x-cache"] == "HIT-L1"
        contrast = await client.get(_url("rainy sunday morning, anything but jazz"))
        assert contrast.headers["x-cache"] == "MISS"
        opposite = await client.get(_url("jazz for a rainy sunday night"))
        assert opposite.headers["x-cache"] == "MISS"  # morning / night: the words conflict
        metrics = (await client.get("/metrics")).text
        assert 'edge_cache_total{kind="hit",tier="semantic"} 1.0' in metrics


async def test_semantic_hits_are_verified_off_the_request_path(edge: ClientFactory) -> None:
    async with edge(semantic_verify_rate=1.0) as client:
        _threshold(client, 0.85)
        await client.get(_url("jazz for a rainy sunday morning"))
        hit = await client.get(_url("rainy sunday morning jazz standards"))
        assert hit.headers["x-cache"] == "SEMANTIC"
        semantic = service_of(client).semantic
        assert semantic is not None
        assert semantic.verifier is not None
        await wait_until(lambda: _true_when(bool(semantic.verifier.stats)), 10.0)
        bucket = next(iter(semantic.verifier.stats))
        stats = semantic.verifier.stats[bucket]
        ready = msgspec.json.decode((await client.get("/readyz")).content)
        assert bucket in ready["semantic"]
        metrics = (await client.get("/metrics")).text
        assert "edge_semantic_verified_total" in metrics
        # Both the lookups and the check's fresh answer are counted as semantic CPU.
        for part in ("lookup", "verify"):
            spent = re.search(rf'edge_semantic_cpu_seconds_total{{part="{part}"}} (\S+)', metrics)
            assert spent is not None, part
            assert float(spent.group(1)) > 0, part
        if stats.wrong:  # a wrong hit is replaced by the prompt's own answer
            assert 'edge_cache_total{kind="replaced",tier="semantic"} 1.0' in metrics
        else:
            assert ready["semantic"][bucket]["verified_hits"] == 1


async def test_a_near_miss_lends_its_tracks_to_the_fresh_answer(edge: ClientFactory) -> None:
    async with edge(semantic_verify_rate=0.0) as client:
        _threshold(client, 0.999)  # nothing hits; close prompts are near misses
        service = service_of(client)
        assert service.semantic is not None
        service.semantic.index.near_margin = 0.5
        seen: list[tuple[int, ...]] = []
        generate = service.compute.generate

        async def spy(intent: Any, n: int, encoded: Any = None, extra: Any = ()) -> Any:
            seen.append(tuple(extra))
            return await generate(intent, n, encoded, extra)

        service.compute.generate = spy  # type: ignore[method-assign]
        source = await client.get(_url("jazz for a rainy sunday morning"))
        near = await client.get(_url("rainy sunday morning jazz standards"))
        assert near.headers["x-cache"] == "MISS"
        source_ids = [t["id"] for t in msgspec.json.decode(source.content)["tracks"]]
        assert seen[0] == ()
        assert len(seen[1]) == len(source_ids)  # the neighbour's rows joined the candidates


async def test_semantic_hits_can_be_turned_off(edge: ClientFactory) -> None:
    async with edge(semantic=False) as client:
        await client.get(_url("jazz for a rainy sunday morning"))
        again = await client.get(_url("rainy sunday morning jazz standards"))
        assert again.headers["x-cache"] == "MISS"


async def test_new_edge_answers_the_regions_top_prompts_from_l1_at_once(
    edge: ClientFactory, redis: RedisServer
) -> None:
    settings = {"l2_url": redis.url, "popularity_interval": 0.05, "prewarm_top": 10}
    popular = ["happy pop for a road trip", "calm piano for sleeping"]
    async with edge(**settings) as one:
        for prompt, times in zip(popular, (5, 3), strict=True):
            for _ in range(times):
                await one.get(_url(prompt))
        topk = one.app.node.topk
        assert topk is not None

        async def shared() -> bool:
            assert topk is not None
            return [k for k, _ in await topk.top(10)] == [
                service_of(one)._keys[_url(p).split("?")[1].encode()] for p in popular
            ]

        await wait_until(shared, 5.0)
    async with edge(**settings) as two:  # promoted from L2
        for prompt in popular:
            assert (await two.get(_url(prompt))).headers["x-cache"] == "HIT-L1", prompt
        assert (await two.get(_url("angry metal"))).headers["x-cache"] == "MISS"
    # Popular prompts no tier holds any more (evicted, or another artifact version's keys)
    # are computed again from their request descriptions.
    client = Redis.from_url(redis.url)
    async for name in client.scan_iter(match="edge:e:*"):
        await client.delete(name)
    await client.aclose()
    async with edge(**settings) as three:
        for prompt in popular:
            assert (await three.get(_url(prompt))).headers["x-cache"] == "HIT-L1", prompt


async def test_a_cold_key_is_computed_once_per_region(
    edge: ClientFactory, redis: RedisServer
) -> None:
    """While edge one holds the lease on a key, edge two waits and then reads L2."""
    async with edge(l2_url=redis.url) as one, edge(l2_url=redis.url) as two:
        gate = threading.Event()
        break_encoder(service_of(one), gate=gate)
        calls_two = break_encoder(service_of(two))
        url = _url("slow jazz for a snowy evening")
        first = asyncio.create_task(one.get(url))
        client = Redis.from_url(redis.url)

        async def leased() -> bool:
            return bool(await client.keys("edge:lease:*"))

        await wait_until(leased, 5.0)
        second = asyncio.create_task(two.get(url))
        await asyncio.sleep(0.1)
        gate.set()
        done_one, done_two = await first, await second
        await client.aclose()
        assert done_one.headers["x-cache"] == "MISS"
        assert done_two.headers["x-cache"] == "HIT-L2"
        assert done_two.headers["etag"] == done_one.headers["etag"]
        assert calls_two == []  # edge two never encoded the prompt


async def test_stale_if_error_from_l2_when_compute_fails(
    edge: ClientFactory, redis: RedisServer, clock: FakeClock
) -> None:
    """An entry past its revalidation window, found in L2, is served when recomputing fails."""
    async with edge(l2_url=redis.url) as one, edge(l2_url=redis.url) as two:
        first = await one.get(_url("gloomy post-punk for a night drive"))
        clock.advance(5000)  # past max-age (with jitter) and stale-while-revalidate
        break_encoder(service_of(two), error=EncoderError("model down"))
        stale = await two.get(_url("gloomy post-punk for a night drive"))
        assert stale.status_code == 200
        assert stale.headers["x-cache"] == "STALE"
        assert stale.headers["etag"] == first.headers["etag"]


async def test_global_store_may_be_redis(edge: ClientFactory, redis: RedisServer) -> None:
    async with edge(global_url=redis.url) as one:
        await one.get(_url("bright disco for a party"))
        await _flush_global(one)
    async with edge(global_url=redis.url) as two:
        again = await two.get(_url("bright disco for a party"))
        assert again.headers["x-cache"] == "HIT-GLOBAL"


async def test_a_revalidation_tells_other_edges_to_drop_their_copy(
    edge: ClientFactory, redis: RedisServer, clock: FakeClock
) -> None:
    """Replacing writes are announced; first fills are not."""
    settings = {"l2_url": redis.url, "ttl": 60, "ttl_jitter": 0, "stale_while_revalidate": 30}
    async with edge(**settings) as one, edge(**settings) as two:
        url = _url("hazy dream pop for a summer evening")
        await one.get(url)
        assert (await two.get(url)).headers["x-cache"] == "HIT-L2"
        assert service_of(two).bus is not None
        key = service_of(two)._keys[url.split("?")[1].encode()]
        clock.advance(70)
        assert (await one.get(url)).headers["x-cache"] == "STALE"  # revalidates in background

        async def dropped_by_two() -> bool:
            return service_of(two).l1.peek(key) is None

        await wait_until(dropped_by_two, 2.0)
        again = await two.get(url)
        assert again.headers["x-cache"] == "HIT-L2"
        assert again.headers["age"] == "0"  # the revalidated entry, not the stale copy


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"tags": "genre:jazz"}', "application/json", 400),
        (b'{"tags": [1, 2]}', "application/json", 400),
        (b'{"tags": ["x"], "extra": 1}', "application/json", 400),
        (b'{"tracks": [""]}', "application/json", 400),
        (b'{"keys": ["' + b"k" * 300 + b'"]}', "application/json", 400),
        (b'{"tags": [' + b",".join([b'"t"'] * 1001) + b"]}", "application/json", 400),
        (b'{"tags": ["a\\u0000b"]}', "application/json", 400),
        (b"tags=x", "application/x-www-form-urlencoded", 415),
        (b'{"tags": ["\xff"]}', "application/json", 400),
        (b"[", "application/json", 400),
    ],
)
async def test_bad_purge_bodies_get_problem_details(
    edge: ClientFactory, body: bytes, content_type: str, status: int
) -> None:
    async with edge(admin_key="s3cret") as client:
        headers = {**ADMIN, "content-type": content_type}
        response = await client.post("/admin/purge", content=body, headers=headers)
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
