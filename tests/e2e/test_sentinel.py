"""L2 behind Redis Sentinel, on real servers: a primary, a replica and three sentinels on
loopback. Killing the primary under steady traffic fails no request, and once Sentinel has
promoted the replica the edges share answers through the new primary."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from redis import Redis

from cache.writebehind import WriteBehind
from loadtest.net import free_port
from loadtest.redis_server import RedisServer

from .conftest import ClientFactory, wait_until


class Sentinels:
    """A primary, a replica of it, and three sentinels watching them as `edge-l2`."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.primary = RedisServer(workdir / "primary").start()
        self.replica_port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        binary = shutil.which("redis-server") or "redis-server"
        replica_dir = workdir / "replica"
        replica_dir.mkdir()
        self.procs.append(
            subprocess.Popen(
                [
                    binary,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.replica_port),
                    "--save",
                    "",
                    "--dir",
                    str(replica_dir),
                    "--replicaof",
                    "127.0.0.1",
                    str(self.primary.port),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        self.ports = [free_port() for _ in range(3)]
        for number, port in enumerate(self.ports):
            config = workdir / f"sentinel{number}.conf"
            config.write_text(
                f"bind 127.0.0.1\nport {port}\ndir {workdir}\n"
                f"sentinel monitor edge-l2 127.0.0.1 {self.primary.port} 2\n"
                "sentinel down-after-milliseconds edge-l2 1000\n"
                "sentinel failover-timeout edge-l2 5000\n"
                "sentinel parallel-syncs edge-l2 1\n"
            )
            self.procs.append(
                subprocess.Popen(
                    [binary, str(config), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self._wait(lambda: self.master_port() == self.primary.port and self._replicated())

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        return f"redis+sentinel://{hosts}/edge-l2"

    def master_port(self) -> int | None:
        try:
            with Redis(port=self.ports[0], socket_timeout=1) as sentinel:
                _host, port = sentinel.execute_command(
                    "SENTINEL", "get-master-addr-by-name", "edge-l2"
                )
                return int(port)
        except Exception:  # noqa: BLE001 - not up yet
            return None

    def _replicated(self) -> bool:
        try:
            with Redis(port=self.replica_port, socket_timeout=1) as replica:
                return replica.info("replication").get("master_link_status") == "up"
        except Exception:  # noqa: BLE001 - not up yet
            return False

    @staticmethod
    def _wait(check: object, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            time.sleep(0.1)
        raise RuntimeError("sentinel topology did not settle")

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(10)
        self.primary.stop()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    topology = Sentinels(tmp_path)
    yield topology
    topology.stop()


def _url(prompt: str) -> str:
    return "/v1/playlists?" + urlencode({"q": prompt, "n": 5})


async def test_a_primary_failover_fails_no_request_and_the_new_primary_is_used(
    edge: ClientFactory, sentinels: Sentinels
) -> None:
    settings = {"l2_url": sentinels.url, "prewarm_top": 0}
    async with edge(**settings) as one, edge(**settings) as two:
        first = await one.get(_url("warm soul for a sunday"))
        assert (await two.get(_url("warm soul for a sunday"))).headers["x-cache"] == "HIT-L2"
        assert first.status_code == 200
        sentinels.primary.proc.kill()  # type: ignore[union-attr]
        statuses: list[int] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        attempt = 0
        while True:
            attempt += 1
            prompt = f"warm soul for a sunday take {attempt}"
            statuses.append((await one.get(_url(prompt))).status_code)
            again = await two.get(_url(prompt))
            statuses.append(again.status_code)
            if (
                again.headers["x-cache"] == "HIT-L2"
                and sentinels.master_port() == sentinels.replica_port
            ):
                break
            assert loop.time() < deadline, "L2 not shared through the new primary within 30 s"
            await asyncio.sleep(0.2)
        assert set(statuses) == {200}
        assert attempt > 1  # there was a failover window to absorb


async def test_events_the_global_store_and_rate_limits_run_through_sentinel(
    edge: ClientFactory, sentinels: Sentinels
) -> None:
    settings = {
        "l2_url": sentinels.url,
        "global_url": sentinels.url,
        "rate_limit": "6/minute",
        "prewarm_top": 0,
    }
    async with edge(**settings) as one, edge(**settings) as two:
        url = _url("late night lo-fi beats")
        event = {
            "event_id": "evt-sentinel-1",
            "type": "complete",
            "playlist": "fp0",
            "prompt_key": "pk-sentinel",
            "track_id": "t1",
            "position": 0,
            "dwell_ms": 1000,
            "ts": "2026-11-23T10:00:00+00:00",
            "user": "listener-1",
        }
        stored = await one.post("/v1/events", json={"events": [event]})
        assert stored.json()["accepted"] == 1
        labels = two.app.node.events.labels  # type: ignore[union-attr]

        async def labelled() -> bool:
            return (await labels.get("pk-sentinel")).accept == 1

        await wait_until(labelled)
        codes = [(await c.get(url)).status_code for c in (one, two, one, two, one, two)]
        assert codes == [200, 200, 200, 200, 200, 429]  # one budget: the event counted too
        behind = next(t for t in one.app.node.require().cache.tiers if isinstance(t, WriteBehind))
        await behind.flush()
    with Redis(port=sentinels.primary.port) as primary:
        assert primary.keys("global:e:*")
        assert primary.keys("ratelimit:*")
