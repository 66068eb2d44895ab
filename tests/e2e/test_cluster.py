"""Every Redis role on a Redis Cluster of real servers on loopback: L2, the global store,
invalidations, events and rate limits. A slot migration under steady traffic, and the loss
of a primary whose replica takes over, fail no request; afterwards the edges share answers
through the cluster's new layout."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import msgspec
import pytest
from redis.cluster import RedisCluster

from cache.writebehind import WriteBehind
from loadtest.redis_server import RedisClusterServers

from .conftest import Client, ClientFactory, service_of, wait_until

# When a node fails or gives up its slots, redis-py's cluster client forgets the node with
# its pooled connections still open; the garbage collector closes them later, with a
# ResourceWarning that is the library's, not the edge's.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(tmp_path / "cluster").start()
    yield servers
    servers.stop()


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[RedisClusterServers]:
    servers = RedisClusterServers(tmp_path / "cluster", replicas=1).start()
    yield servers
    servers.stop()


def _url(prompt: str) -> str:
    return "/v1/playlists?" + urlencode({"q": prompt, "n": 5})


class Traffic:
    """Steady requests from two edges until stopped: every new prompt is computed by `one`
    and must then be found by `two` (in its L2, or computed again when L2 missed)."""

    def __init__(self, one: Client, two: Client) -> None:
        self.one, self.two = one, two
        self.statuses: list[int] = []
        self.shared: list[bool] = []
        self._stop = asyncio.Event()
        self._numbers = itertools.count()

    async def run(self) -> None:
        while not self._stop.is_set():
            prompt = f"night drive synthwave take {next(self._numbers)}"
            self.statuses.append((await self.one.get(_url(prompt))).status_code)
            again = await self.two.get(_url(prompt))
            self.statuses.append(again.status_code)
            self.shared.append(again.headers["x-cache"] == "HIT-L2")
            await asyncio.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()


async def test_every_redis_role_works_on_a_cluster(
    edge: ClientFactory, cluster: RedisClusterServers
) -> None:
    settings = {
        "l2_url": cluster.url,
        "global_url": cluster.url,
        "rate_limit": "50/minute",
        "admin_key": "s3cret",
        "prewarm_top": 0,
        # The budget check below counts every request in the cluster; at the default 50 ms
        # a busy machine can time out the client's first cluster discovery, and the limiter
        # then counts a few requests per process instead.
        "remote_timeout_ms": 1000,
    }
    async with edge(**settings) as one, edge(**settings) as two:
        url = _url("warm soul for a sunday")
        assert (await one.get(url)).headers["x-cache"] == "MISS"
        assert (await two.get(url)).headers["x-cache"] == "HIT-L2"
        # Invalidations reach the other edge over the cluster's pub/sub: its L1 copy goes.
        assert (await two.get(url)).headers["x-cache"] == "HIT-L1"
        await wait_until(lambda: _subscribed(two))
        for tier in service_of(one).cache.tiers:
            if isinstance(tier, WriteBehind):
                await tier.flush()  # the global store has it too
        track = msgspec.json.decode((await one.get(url)).content)["tracks"][0]["id"]
        purge = await one.post(
            "/admin/purge", json={"tracks": [track]}, headers={"authorization": "Bearer s3cret"}
        )
        assert purge.json()["dropped"] == {"l1": 1, "l2": 1, "global": 1}
        assert purge.json()["published"] is True

        async def dropped() -> bool:
            return len(service_of(two).l1) == 0

        await wait_until(dropped)
        # Events land in the cluster's streams and are consumed into sessions and labels.
        accepted = await one.post(
            "/v1/events",
            json={
                "events": [
                    {
                        "event_id": "evt-cluster-1",
                        "type": "skip",
                        "playlist": "fp0",
                        "prompt_key": "pk-cluster",
                        "track_id": "t1",
                        "position": 0,
                        "dwell_ms": 1000,
                        "ts": "2026-11-23T10:00:00+00:00",
                        "user": "listener-1",
                    }
                ]
            },
        )
        assert accepted.json()["accepted"] == 1
        labels = one.app.node.events.labels  # type: ignore[union-attr]

        async def labelled() -> bool:
            return (await labels.get("pk-cluster")).reject == 1

        await wait_until(labelled)
        # One rate-limit budget across both edges, counted in the cluster.
        used = 5  # /v1/ requests this client has made so far (playlists and events)
        codes = [
            (await client.get(url)).status_code
            for client in itertools.islice(itertools.cycle((one, two)), 50 - used + 2)
        ]
        assert codes.count(429) == 2
        assert codes[-2:] == [429, 429]
    with RedisCluster(host="127.0.0.1", port=cluster.nodes[0].port) as direct:
        assert any(k.startswith(b"ratelimit:") for k in direct.keys(target_nodes="all"))


async def _subscribed(client: Client) -> bool:
    bus = service_of(client).bus
    return bus is not None and bus.subscribed


async def test_a_slot_migration_under_traffic_fails_no_request(
    edge: ClientFactory, cluster: RedisClusterServers
) -> None:
    settings = {"l2_url": cluster.url, "prewarm_top": 0}
    async with edge(**settings) as one, edge(**settings) as two:
        before = [f"rainy cafe jazz {n}" for n in range(12)]
        for prompt in before:
            assert (await one.get(_url(prompt))).status_code == 200
        traffic = Traffic(one, two)
        running = asyncio.create_task(traffic.run())
        source, target = cluster.nodes[0], cluster.nodes[1]
        # Every slot of one primary, with its keys, moves while the edges keep asking.
        await asyncio.to_thread(cluster.move_slots, source, target, 16384 // 3 + 1)
        traffic.stop()
        await running
        assert set(traffic.statuses) == {200}
        assert len(traffic.statuses) > 10  # the migration happened under traffic
        assert source not in cluster.primaries()
    async with edge(**settings) as late:  # a new edge finds the moved entries in L2
        hits = [(await late.get(_url(p))).headers["x-cache"] for p in before]
        assert hits == ["HIT-L2"] * len(before)


async def test_losing_a_primary_fails_no_request_and_its_replica_takes_over(
    edge: ClientFactory, replicated: RedisClusterServers
) -> None:
    settings = {"l2_url": replicated.url, "prewarm_top": 0}
    lost = replicated.primaries()[0]
    async with edge(**settings) as one, edge(**settings) as two:
        traffic = Traffic(one, two)
        running = asyncio.create_task(traffic.run())
        await asyncio.sleep(0.5)
        lost.stop()  # SIGKILL: no goodbye to the cluster
        await asyncio.to_thread(
            replicated.wait,
            lambda: (
                all(
                    replicated.info(n).get("cluster_state") == "ok"
                    for n in replicated.nodes
                    if n.proc is not None
                )
                and len(replicated.primaries()) == 3
            ),
        )
        shared_before = len(traffic.shared)
        await asyncio.sleep(3)  # the edges' clients learn the new layout
        traffic.stop()
        await running
        assert set(traffic.statuses) == {200}
        after = traffic.shared[shared_before:]
        assert after
        assert after[-5:] == [True] * 5
