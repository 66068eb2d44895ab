"""Per-client rate limits: 429 problem+json with Retry-After and RateLimit headers, one
budget per client across the region's edges (real redis-server), per process without it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from loadtest.redis_server import RedisServer

from .conftest import ClientFactory

URL = "/v1/playlists?q=slow+blues+for+a+bar&n=5"


async def test_a_client_over_its_limit_gets_429_even_for_cached_answers(
    edge: ClientFactory,
) -> None:
    async with edge(rate_limit="3/minute") as client:
        statuses = [(await client.get(URL)).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]  # the last two were L1 hits
        refused = await client.get(URL)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-limit"] == "3"
        assert refused.headers["ratelimit-remaining"] == "0"
        assert "3 per 1 minute" in refused.json()["detail"]
        assert (await client.get("/healthz")).status_code == 200  # not a /v1/ route
        metrics = (await client.get("/metrics")).text
        assert 'edge_rejections_total{reason="rate-limit"} 1.0' in metrics


async def test_clients_are_told_apart_only_by_what_can_be_trusted(edge: ClientFactory) -> None:
    async def allowed(client: object, headers: dict[str, str]) -> int:
        codes = [(await client.get(URL, headers=headers)).status_code for _ in range(3)]  # type: ignore[attr-defined]
        return codes.count(200)

    async with edge(rate_limit="2/minute") as client:  # the peer is not a trusted proxy
        assert await allowed(client, {"x-forwarded-for": "198.51.100.1"}) == 2
        assert await allowed(client, {"x-forwarded-for": "198.51.100.2"}) == 0  # same peer
    async with edge(rate_limit="2/minute", trusted_proxies="127.0.0.0/8") as client:
        assert await allowed(client, {"x-forwarded-for": "198.51.100.1, 127.0.0.5"}) == 2
        assert await allowed(client, {"x-forwarded-for": "198.51.100.2"}) == 2
        assert await allowed(client, {"x-forwarded-for": "198.51.100.1"}) == 0
    async with edge(rate_limit="2/minute", client_header="CF-Connecting-IP") as client:
        assert await allowed(client, {"cf-connecting-ip": "203.0.113.9"}) == 2
        assert await allowed(client, {"cf-connecting-ip": "203.0.113.10"}) == 2


async def test_a_keys_tier_sets_its_limit(edge: ClientFactory, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    gold, plain = "gold-key-0123456789", "plain-key-0123456789"
    keys.write_text(
        f"g:read:{hashlib.sha256(gold.encode()).hexdigest()}:gold\n"
        f"p:read:{hashlib.sha256(plain.encode()).hexdigest()}\n"
    )
    settings = {
        "api_keys_file": str(keys),
        "rate_limit": "1/minute",
        "rate_limit_tiers": "gold=4/minute",
    }
    async with edge(**settings) as client:
        golden = [
            (await client.get(URL, headers={"x-api-key": gold})).status_code for _ in range(5)
        ]
        assert golden == [200, 200, 200, 200, 429]
        plain_codes = [
            (await client.get(URL, headers={"x-api-key": plain})).status_code for _ in range(2)
        ]
        assert plain_codes == [200, 429]


async def test_one_budget_across_the_regions_edges_and_per_process_without_redis(
    edge: ClientFactory, redis_server: RedisServer
) -> None:
    settings = {"rate_limit": "4/minute", "l2_url": redis_server.url}
    async with edge(**settings) as one, edge(**settings) as two:
        codes = [(await c.get(URL)).status_code for c in (one, two, one, two, one, two)]
        assert codes == [200, 200, 200, 200, 429, 429]
        redis_server.stop()
        fallback = [(await two.get(URL)).status_code for _ in range(5)]
        assert fallback == [200, 200, 200, 200, 429]  # counted in this process, never a 500
