"""The request path over HTTP: L1 hits, HTTP caching headers, freshness, faults, overload."""

from __future__ import annotations

import asyncio
import threading

import msgspec
import numpy as np
import xxhash

from models.errors import EncoderError
from tests.clock import FakeClock

from .conftest import ClientFactory, break_encoder, service_of, settle

URL = "/v1/playlists?q=rainy+sunday+morning+jazz&n=12"


def _doc(body: bytes) -> dict[str, object]:
    return msgspec.json.decode(body)  # type: ignore[no-any-return]


async def test_first_request_misses_then_hits_l1(edge: ClientFactory) -> None:
    """A miss computes and stores; the repeat is an L1 hit with the same ETag and bytes:
    where an answer came from and its age are headers, never body members."""
    async with edge() as client:
        miss = await client.get(URL)
        hit = await client.get(URL)
    assert miss.status_code == hit.status_code == 200
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT-L1")
    assert miss.headers["etag"] == hit.headers["etag"]
    assert miss.content == hit.content
    doc = _doc(hit.content)
    assert "cache" not in doc
    assert len(doc["tracks"]) == 12  # type: ignore[arg-type]
    assert set(doc["tracks"][0]) == {"id", "title", "artist", "score"}  # type: ignore[index]
    assert hit.headers["etag"] == f'"{xxhash.xxh3_128_hexdigest(hit.content)}"'
    assert doc["degraded"] is False
    slots = doc["slots"]
    assert slots["genres"] == ["jazz"]
    assert slots["moods"] == ["calm"]


async def test_shared_answers_carry_cdn_cache_headers(edge: ClientFactory) -> None:
    """public + max-age + s-maxage (half of it by default) + SWR + SIE, Age, Surrogate-Key,
    Server-Timing; nothing that forbids serving stale, and no Vary on a node without keys."""
    async with edge(ttl=600, ttl_jitter=0, stale_while_revalidate=30, stale_if_error=900) as c:
        miss = await c.get(URL)
        hit = await c.get(URL)
    assert hit.headers["cache-control"] == (
        "public, max-age=600, s-maxage=300, stale-while-revalidate=30, stale-if-error=900"
    )
    assert hit.headers["age"] == "0"
    assert "vary" not in hit.headers
    keys = hit.headers["surrogate-key"].split()
    version = _doc(hit.content)["version"]
    assert f"v:{version}" in keys
    assert "genre:jazz" in keys
    assert "mood:calm" in keys
    assert any(k.startswith("p:") for k in keys)
    assert any(k.startswith("k:") for k in keys)
    stages = [part.split(";")[0] for part in miss.headers["server-timing"].split(", ")]
    assert stages == ["l1", "encode", "search", "rank", "total"]
    assert [p.split(";")[0] for p in hit.headers["server-timing"].split(", ")] == ["l1", "total"]


async def test_if_none_match_gets_304(edge: ClientFactory) -> None:
    """Strong ETag revalidation: matching (also weakly, or *) gives 304 with no body."""
    async with edge() as client:
        etag = (await client.get(URL)).headers["etag"]
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            response = await client.get(URL, headers={"if-none-match": header})
            assert response.status_code == 304, header
            assert response.content == b""
            assert response.headers["etag"] == etag
        other = await client.get(URL, headers={"if-none-match": '"nope"'})
    assert other.status_code == 200


async def test_equivalent_get_and_post_share_one_entry(edge: ClientFactory) -> None:
    """Reordered, re-cased GET parameters and the POST form all hit the first answer."""
    async with edge() as client:
        first = await client.get("/v1/playlists?mood=calm&genre=jazz&n=10")
        again = await client.get("/v1/playlists?n=10&genre=Jazz&mood=calm,calm")
        post = await client.post(
            "/v1/playlists",
            json={"schema_version": 1, "slots": {"genres": ["jazz"], "moods": ["calm"]}, "n": 10},
        )
    assert first.headers["x-cache"] == "MISS"
    assert again.headers["x-cache"] == post.headers["x-cache"] == "HIT-L1"
    assert first.headers["etag"] == again.headers["etag"] == post.headers["etag"]


async def test_stale_entry_is_served_while_it_revalidates(
    edge: ClientFactory, clock: FakeClock
) -> None:
    """Past max-age but inside stale-while-revalidate: STALE at once, then a fresh HIT."""
    async with edge(ttl=60, ttl_jitter=0, stale_while_revalidate=30) as client:
        await client.get(URL)
        clock.advance(70)
        stale = await client.get(URL)
        await settle()
        fresh = await client.get(URL)
    assert stale.status_code == 200
    assert stale.headers["x-cache"] == "STALE"
    assert stale.headers["age"] == "70"
    assert fresh.headers["x-cache"] == "HIT-L1"
    assert fresh.headers["age"] == "0"


async def test_stale_entry_answers_when_recompute_fails(
    edge: ClientFactory, clock: FakeClock
) -> None:
    """Past the revalidation window but inside stale-if-error, a failing encoder serves stale."""
    async with edge(ttl=60, ttl_jitter=0, stale_while_revalidate=10, stale_if_error=3600) as c:
        good = await c.get(URL)
        clock.advance(100)
        break_encoder(service_of(c), EncoderError("model down"))
        stale = await c.get(URL)
    assert stale.headers["x-cache"] == "STALE"
    assert stale.headers["etag"] == good.headers["etag"]
    assert _doc(stale.content)["degraded"] is False


async def test_encoder_failure_answers_from_fallback(edge: ClientFactory) -> None:
    """No cached answer and a broken encoder: a degraded playlist matching the slots,
    short TTL, kept out of shared tiers."""
    async with edge(fallback_ttl=7) as client:
        service = service_of(client)
        break_encoder(service, EncoderError("model down"))
        response = await client.get("/v1/playlists?genre=rock&n=10")
        again = await client.get("/v1/playlists?genre=rock&n=10")
    assert response.status_code == 200
    assert response.headers["x-cache"] == again.headers["x-cache"] == "FALLBACK"
    assert response.headers["cache-control"] == "public, max-age=7"
    doc = _doc(response.content)
    assert doc["degraded"] is True
    assert len(doc["tracks"]) == 10
    rows = [
        service.artifacts.catalog.table.column("id").to_pylist().index(t["id"])  # type: ignore[index]
        for t in doc["tracks"]
    ]  # type: ignore[attr-defined]
    assert all(service.artifacts.catalog.has_genre("rock", np.array(rows)))


async def test_slow_encoder_times_out_into_fallback(edge: ClientFactory) -> None:
    gate = threading.Event()
    async with edge(compute_timeout=0.2) as client:
        break_encoder(service_of(client), gate=gate)
        response = await client.get("/v1/playlists?q=slow+encoder+jazz")
        gate.set()
    assert response.headers["x-cache"] == "FALLBACK"
    assert _doc(response.content)["degraded"] is True


async def test_concurrent_misses_for_one_key_compute_once(edge: ClientFactory) -> None:
    """Eight simultaneous requests for one new prompt run the encoder for one prompt."""
    gate = threading.Event()
    async with edge() as client:
        calls = break_encoder(service_of(client), gate=gate)
        requests = [
            asyncio.ensure_future(client.get("/v1/playlists?q=coalesce+me")) for _ in range(8)
        ]
        await asyncio.sleep(0.2)
        gate.set()
        responses = await asyncio.gather(*requests)
        metrics = (await client.get("/metrics")).text
    assert calls == [1]
    assert {r.headers["etag"] for r in responses} != set()
    assert len({r.headers["etag"] for r in responses}) == 1
    assert 'edge_cache_total{kind="coalesced",tier="compute"} 7.0' in metrics


async def test_overload_rejects_misses_but_serves_hits(edge: ClientFactory) -> None:
    """With the bulkhead full, a new prompt gets 503 + Retry-After; a cached one still 200."""
    gate = threading.Event()
    async with edge(compute_queue=1, retry_after=4) as client:
        assert (await client.get(URL)).status_code == 200
        break_encoder(service_of(client), gate=gate)
        blocked = asyncio.ensure_future(client.get("/v1/playlists?q=first+miss"))
        await asyncio.sleep(0.2)
        rejected = await client.get("/v1/playlists?q=second+miss")
        hit = await client.get(URL)
        gate.set()
        assert (await blocked).status_code == 200
        metrics = (await client.get("/metrics")).text
    assert rejected.status_code == 503
    assert rejected.headers["retry-after"] == "4"
    assert rejected.headers["content-type"] == "application/problem+json"
    assert hit.status_code == 200
    assert hit.headers["x-cache"] == "HIT-L1"
    assert 'edge_rejections_total{reason="overload"} 1.0' in metrics


async def test_personalised_answer_is_private_and_leaves_shared_entry_alone(
    edge: ClientFactory,
) -> None:
    """A user's excluded tracks are dropped and backfilled; the response is private; the
    shared cached answer still has them."""
    body = {"schema_version": 1, "prompt": "rainy sunday morning jazz", "n": 12}
    async with edge() as client:
        shared = await client.post("/v1/playlists", json=body)
        ids = [t["id"] for t in _doc(shared.content)["tracks"]]  # type: ignore[attr-defined]
        await service_of(client).exclusions.add("listener-7", ids[:3])
        personal = await client.post("/v1/playlists", json={**body, "user": "listener-7"})
        shared_again = await client.get(URL)
    assert personal.headers["cache-control"].startswith("private")
    mine = [t["id"] for t in _doc(personal.content)["tracks"]]  # type: ignore[attr-defined]
    assert len(mine) == 12
    assert not set(ids[:3]) & set(mine)
    assert mine[:9] == ids[3:]
    assert personal.headers["etag"] != shared.headers["etag"]
    assert [t["id"] for t in _doc(shared_again.content)["tracks"]] == ids  # type: ignore[attr-defined]
    assert shared_again.headers["x-cache"] == "HIT-L1"


async def test_lean_and_routed_hits_send_the_same_headers(edge: ClientFactory) -> None:
    """The pre-routing hit path is indistinguishable from the routed one, metrics included."""
    headers = []
    for lean in (False, True):
        async with edge(lean_path=lean, ttl_jitter=0) as client:
            await client.get(URL)
            hit = await client.get(URL)
            metrics = (await client.get("/metrics")).text
        assert 'edge_requests_total{route="/v1/playlists",status="200"} 2.0' in metrics
        assert 'edge_cache_total{kind="hit",tier="l1"} 1.0' in metrics
        headers.append({k: v for k, v in hit.headers.items() if k != "server-timing"})
        assert hit.headers["x-cache"] == "HIT-L1"
    assert headers[0] == headers[1]


async def test_lean_and_routed_misses_and_problems_are_the_same(edge: ClientFactory) -> None:
    """A miss or a bad query answered before routing looks exactly like the routed answer:
    headers (Server-Timing aside), problem documents and the request and cache metrics."""
    bad_queries = [
        *("?genres=jazz", "?q=a&q=b", "?mood=furious", "?exclude=nothing-known", ""),
        # What the routed handler's typed parameters refuse, the query parser refuses too.
        *("?q=jazz&explicit=yes", "?q=jazz&explicit=", "?q=jazz&explicit=true,false"),
        *("?q=jazz&n=05", "?q=jazz&n=5,6", "?q=jazz&n=", "?q=jazz&n=%D9%A3", "?q=jazz&n=%C2%B2"),
        *("?q=jazz&n=0", "?q=jazz&n=abc", "?q=jazz&explicit=maybe", "?q=" + "a" * 2001),
        "?q=" + "a" * 1990 + "," * 20,
    ]
    seen = []
    for lean in (False, True):
        async with edge(lean_path=lean, ttl_jitter=0) as client:
            miss = await client.get(URL)
            etag = miss.headers["etag"]
            not_modified = await client.get(URL, headers={"if-none-match": etag})
            bad = [await client.get("/v1/playlists" + q) for q in bad_queries]
            metrics = (await client.get("/metrics")).text
        assert miss.headers["x-cache"] == "MISS"
        assert not_modified.status_code == 304
        assert "content-length" not in not_modified.headers
        assert 'edge_cache_total{kind="miss",tier="compute"} 1.0' in metrics
        assert 'edge_requests_total{route="/v1/playlists",status="200"} 1.0' in metrics
        assert 'edge_requests_total{route="/v1/playlists",status="304"} 1.0' in metrics
        assert f'status="400"}} {len(bad_queries)}.0' in metrics
        assert all(r.status_code == 400 for r in bad), [r.status_code for r in bad]
        assert all(r.headers["content-type"] == "application/problem+json" for r in bad)
        seen.append(
            (
                {k: v for k, v in miss.headers.items() if k != "server-timing"},
                miss.content,
                {k: v for k, v in not_modified.headers.items() if k != "server-timing"},
                [(r.status_code, dict(r.headers), r.content) for r in bad],
            )
        )
    assert seen[0] == seen[1]


async def test_health_readiness_metrics_and_schema(edge: ClientFactory) -> None:
    async with edge() as client:
        health = await client.get("/healthz")
        ready = await client.get("/readyz")
        await client.get(URL)
        metrics = await client.get("/metrics")
        schema = await client.get("/schema/openapi.json")
    assert health.status_code == 200
    doc = _doc(ready.content)
    assert ready.status_code == 200
    assert doc["status"] == "ready"
    assert doc["tiers"] == {"l1": "ok"}
    for name in (
        "edge_requests_total",
        "edge_request_seconds_bucket",
        "edge_cache_total",
        "edge_compute_queue_depth",
        "edge_stage_seconds",
        "edge_encoder_batch_size",
    ):
        assert name in metrics.text, name
    paths = _doc(schema.content)["paths"]
    assert "/v1/playlists" in paths  # type: ignore[operator]


async def test_options_lists_every_method_of_a_path(edge: ClientFactory) -> None:
    """OPTIONS names both GET and POST on /v1/playlists (Litestar's own answer named only
    the first handler's method), without needing a key."""
    async with edge() as client:
        answer = await client.options("/v1/playlists")
        assert answer.status_code == 204
        assert answer.headers["allow"] == "GET, OPTIONS, POST"
        assert (await client.options("/v1/events")).headers["allow"] == "OPTIONS, POST"
