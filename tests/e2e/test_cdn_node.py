"""The node's side of CDN caching, in process with a frozen clock: refresh ahead of
expiry, soft purges, canonical redirects and Vary, on the lean and the routed path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from client import AsyncPlaylistClient
from loadtest.redis_server import RedisServer
from tests.clock import FakeClock

from .conftest import ClientFactory, break_encoder, service_of, settle

URL = "/v1/playlists?q=rainy%20sunday%20morning%20jazz"
ADMIN = {"authorization": "Bearer admin-key"}


async def test_popular_answers_are_refreshed_before_shared_copies_run_out(
    edge: ClientFactory, clock: FakeClock
) -> None:
    """Halfway through the shared lifetime (s-maxage 50 of max-age 100) an answer asked for
    lately is recomputed in the background: the next answer is young again, same bytes."""
    async with edge(ttl=100, ttl_jitter=0) as client:
        first = await client.get(URL)
        service = service_of(client)
        clock.advance(20)
        assert service.refresh_ahead() == 0  # not due yet
        clock.advance(6)
        assert service.refresh_ahead() == 1
        await settle()
        again = await client.get(URL)
        metrics = (await client.get("/metrics")).text
    assert again.headers["x-cache"] == "HIT-L1"
    assert again.headers["age"] == "0"
    assert again.headers["etag"] == first.headers["etag"]
    assert again.content == first.content
    assert 'edge_cache_total{kind="refreshed",tier="compute"} 1.0' in metrics


@pytest.mark.parametrize("lean", [True, False])
async def test_soft_purge_serves_stale_then_fresh(
    edge: ClientFactory, clock: FakeClock, lean: bool
) -> None:
    """A soft purge keeps the entry but ends its freshness: the next request gets it as
    STALE while it is recomputed, the one after a fresh answer."""
    async with edge(lean_path=lean, admin_key="admin-key", ttl_jitter=0) as client:
        first = await client.get(URL)
        tag = "p:" + first.json()["prompt_key"]
        purged = await client.post(
            "/admin/purge", json={"tags": [tag], "soft": True}, headers=ADMIN
        )
        clock.advance(1)
        stale = await client.get(URL)
        await settle()
        fresh = await client.get(URL)
    assert purged.status_code == 200
    assert purged.json()["softened"] == {"l1": 1}
    assert stale.headers["x-cache"] == "STALE"
    assert stale.content == first.content
    assert fresh.headers["x-cache"] == "HIT-L1"


@pytest.mark.parametrize("lean", [True, False])
async def test_non_canonical_queries_are_redirected(edge: ClientFactory, lean: bool) -> None:
    """With canonical redirects on, a 308 names the canonical URL (cacheable, no body);
    the canonical URL answers; a bad query is still a 400 problem."""
    async with edge(lean_path=lean, canonical_redirect=True) as client:
        moved = await client.get("/v1/playlists?q=Rainy+Sunday+morning+jazz&n=30")
        answered = await client.get(moved.headers["location"])
        bad = await client.get("/v1/playlists?q=jazz&n=0")
        unknown = await client.get("/v1/playlists?genres=jazz")
    assert moved.status_code == 308
    assert moved.headers["location"] == URL
    assert moved.headers["cache-control"].startswith("public, max-age=")
    assert moved.content == b""
    assert answered.status_code == 200
    assert (bad.status_code, unknown.status_code) == (400, 400)
    assert bad.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("lean", [True, False])
async def test_keyed_nodes_vary_on_the_key(edge: ClientFactory, tmp_path: Path, lean: bool) -> None:
    """With API keys, shared answers and their 304s say Vary: X-API-Key; refusals are
    no-store."""
    keys = tmp_path / "keys"
    keys.write_text(f"app:read:{hashlib.sha256(b'k-123456789').hexdigest()}\n")
    async with edge(lean_path=lean, api_keys_file=str(keys)) as client:
        headers = {"x-api-key": "k-123456789"}
        first = await client.get(URL, headers=headers)
        again = await client.get(URL, headers={**headers, "if-none-match": first.headers["etag"]})
        refused = await client.get(URL)
    assert first.headers["vary"] == again.headers["vary"] == "X-API-Key"
    assert again.status_code == 304
    assert refused.status_code == 401
    assert "no-store" in refused.headers["cache-control"]


async def test_an_edge_takes_a_refresh_the_region_already_made(
    edge: ClientFactory, clock: FakeClock, redis_server: RedisServer
) -> None:
    """Two edges of a region refresh the same popular answer: the first computes it, the
    second finds the younger entry in L2 and computes nothing."""
    async with (
        edge(l2_url=redis_server.url, ttl=100, ttl_jitter=0) as one,
        edge(l2_url=redis_server.url, ttl=100, ttl_jitter=0) as two,
    ):
        await one.get(URL)
        assert (await two.get(URL)).headers["x-cache"] == "HIT-L2"
        calls = break_encoder(service_of(two))
        clock.advance(26)
        assert service_of(one).refresh_ahead() == 1
        await settle()
        service_of(two).refresh_ahead()
        await settle()
        again = await two.get(URL)
    assert calls == []
    assert again.headers["age"] == "0"


async def test_the_sdk_follows_the_canonical_redirect(edge: ClientFactory) -> None:
    """The client SDK's URLs need not be canonical: it follows the 308 and reads the cache
    tier and age from the headers."""
    async with edge(canonical_redirect=True) as client:
        transport = httpx.ASGITransport(app=client.app)
        async with AsyncPlaylistClient("http://edge", transport=transport) as sdk:
            first = await sdk.playlist("Rainy Sunday morning jazz", n=30)
            again = await sdk.playlist("Rainy Sunday morning jazz", n=30)
    assert len(first.tracks) == 30
    assert first.cache.tier == "MISS"
    assert again.not_modified
