"""Failover drills: steady load on a local topology, a fault at a set time, a verdict.

    python -m loadtest.drill redis-kill --duration 45 --out bench-out/drills/redis-kill

A drill starts its own topology (a durable global Redis, one region of two edges, or two for
region-failover; every Redis behind a fault proxy), drives a steady, bounded load from the
corpus over the edges, injects the fault at 1/3 of the run and removes it at 2/3, then stops
everything it started. Meanwhile it polls every edge's /readyz four times a second, to report
how long the fault took to show there (time to detect) and how long after its end every edge
was healthy again (time to recover). It writes `samples.csv` (one row per request),
`report.md` and `timeline.png` (p50/p99, rps, failures and tier mix per second, the fault
shaded) and exits 1 when a target is missed.

Clients behave like a load balancer's: a request that finds its edge refusing connections or
not ready (503 from a node that is still loading) is sent once more, to the next edge.

Drills and their targets (all: 0 failed requests unless said otherwise):
  redis-kill       SIGKILL the region's redis-server, start it again on the same port.
  redis-pause      SIGSTOP the region's redis-server (a frozen host), SIGCONT later.
  redis-blackhole  the fault proxy accepts and swallows: Redis never answers.
  redis-slow       the fault proxy adds 200 ms each way to every Redis exchange.
                   For these four: p99 during the fault <= 2 x baseline p99 + the L2 timeout,
                   and L2 answers (HIT-L2) again within 10 s of the fault ending.
  global-down      SIGKILL the global store's Redis (append-only file, fsync always), start it
                   again: the edges' write-behind queues hold the writes and drain within 30 s
                   of its return; every entry the store had is still there, and one new entry
                   per prompt first answered from the fault's start on has landed.
  encoder-fail     the edges' encoders raise (POST /admin/faults): misses get fallback
  encoder-hang     answers flagged degraded, hits keep coming from the caches, nothing
                   fails, and normal answers (MISS) resume within 10 s of the model's return.
                   (hang: the encoder thread blocks; requests give up at the compute timeout.)
  edge-kill        SIGKILL one edge and its workers, start it again: clients fail over, the
                   restarted edge is ready within 60 s with >= 10 popular prompts prewarmed.
  region-failover  both edges of region r1 are killed: r1's clients move to region r2, which
                   answers r1's prompts from its tiers (the global store) after at most one
                   compute per prompt; r1 comes back at the end.
  overload         a flood of never-seen prompts at 3x the edge's measured miss capacity:
                   requests for cached prompts keep succeeding (p99 <= 500 ms), flood misses
                   beyond capacity get 503 with Retry-After and nothing else fails, the edge's
                   memory stays within 1.25x of its size before, and misses are served again
                   within 5 s of the flood's end.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import numpy as np
from redis import Redis

from loadtest import corpus as corpus_file
from loadtest.faultproxy import send_command
from loadtest.net import wait_ready
from loadtest.prompts import unique_prompts
from loadtest.redis_server import RedisServer
from loadtest.topology import named, send_signal, spawn

L2_TIMEOUT_MS = 50.0  # the edge's default EDGE_REMOTE_TIMEOUT_MS
COMPUTE_TIMEOUT_MS = 2000.0  # the edge's default EDGE_COMPUTE_TIMEOUT


@dataclass
class Sample:
    t: float
    ms: float
    status: int
    tier: str
    edge: str = ""
    path: str = ""
    degraded: bool = False
    retry_after: bool = False
    stream: str = "steady"
    key: str = ""
    """The edge's cache key for the answer (the `k:` tag of its Surrogate-Key)."""


async def _request(http: httpx.AsyncClient, candidates: list[str], path: str) -> Sample:
    """One request, sent once more to the next candidate if the first refuses or is not ready
    (t is left for the caller to set)."""
    began = time.monotonic()
    sample = Sample(0.0, 0.0, 0, "ERROR", path=path)
    for url in candidates:
        try:
            response = await http.get(url + path)
        except httpx.TransportError:
            sample.status, sample.tier, sample.edge = 0, "ERROR", url
            continue
        sample.status, sample.edge = response.status_code, url
        sample.tier = response.headers.get("x-cache", "")
        sample.retry_after = "retry-after" in response.headers
        tag = response.headers.get("surrogate-key", "").split(" ", 1)[0]
        sample.key = tag.removeprefix("k:") if tag.startswith("k:") else ""
        if sample.tier in ("FALLBACK", "MISS"):
            sample.degraded = bool(response.json().get("degraded"))
        if sample.status != 503:
            break
    sample.ms = (time.monotonic() - began) * 1000
    return sample


async def _load(
    routes: list[list[str]],
    entries: list[dict[str, Any]],
    seconds: float,
    concurrency: int,
    seed: int,
    start: float,
) -> list[Sample]:
    """`concurrency` clients for `seconds`, each request a Zipf-drawn corpus entry, client i
    sending to routes[i] (its edge first, then where it fails over to)."""
    rng = np.random.default_rng(seed)
    weights = np.array([e["weight"] for e in entries])
    weights /= weights.sum()
    samples: list[Sample] = []

    async def client(http: httpx.AsyncClient, candidates: list[str]) -> None:
        while (now := time.monotonic()) - start < seconds:
            entry = entries[int(rng.choice(len(entries), p=weights))]
            sample = await _request(http, candidates, f"/v1/playlists?{corpus_file.query(entry)}")
            sample.t = now - start
            samples.append(sample)
            await asyncio.sleep(max(0.0, 0.02 - (time.monotonic() - now)))  # ~50 rps a client

    async with httpx.AsyncClient(timeout=10) as http:
        await asyncio.gather(*(client(http, routes[i % len(routes)]) for i in range(concurrency)))
    return samples


async def _watch(urls: list[str], start: float, seconds: float) -> list[tuple[float, bool]]:
    """Every 0.25 s: is every edge ready with every tier and its compute "ok" on /readyz?"""
    seen: list[tuple[float, bool]] = []
    async with httpx.AsyncClient(timeout=1.0) as http:
        while (now := time.monotonic()) - start < seconds:

            async def healthy(url: str) -> bool:
                try:
                    response = await http.get(url + "/readyz")
                except httpx.HTTPError:
                    return False
                doc = response.json()
                tiers = doc.get("tiers", {}).values()
                compute = doc.get("compute", {}).get("state", "ok")
                return response.status_code == 200 and compute == "ok" and set(tiers) <= {"ok"}

            states = await asyncio.gather(*(healthy(url) for url in urls))
            seen.append((now - start, all(states)))
            await asyncio.sleep(max(0.0, 0.25 - (time.monotonic() - now)))
    return seen


def detection(watch: list[tuple[float, bool]], fault: tuple[float, float]) -> dict[str, Any]:
    """Seconds from the fault's start until /readyz showed it on some edge, and from its end
    (or from detection, if later) until every edge was healthy again; None: never."""
    detected = next((t for t, ok in watch if t >= fault[0] and not ok), None)
    if detected is None:
        return {"readyz_detected_after_s": None, "readyz_recovered_after_s": None}
    since = max(fault[1], detected)
    recovered = next((t for t, ok in watch if t >= since and ok), None)
    return {
        "readyz_detected_after_s": round(detected - fault[0], 2),
        "readyz_recovered_after_s": None if recovered is None else round(recovered - fault[1], 2),
    }


def _topology(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "loadtest.topology", "--state", str(state), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def _metric(url: str, name: str) -> float:
    """Sum of a Prometheus metric's samples on one edge (0 when absent or unreachable)."""
    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


def _restart_edge(edge: dict[str, Any]) -> float | None:
    """Start a killed edge again with its settings; seconds until ready (None: not in 120 s)."""
    began = time.monotonic()
    edge["pid"] = spawn([sys.executable, "-m", "edge"], edge["env"], Path(edge["log"]))
    return time.monotonic() - began if wait_ready(edge["port"], timeout=120) else None


class Drill:
    """A fault: how to inject and remove it, where clients send, and what else to check."""

    name = ""
    regions = 1
    l2_checks = True
    """Check that L2 answers again within 10 s of the fault's end."""
    latency_budget_ms: float | None = L2_TIMEOUT_MS
    """p99 during the fault may be 2 x the baseline p99 plus this (None: not checked)."""
    no_failures = "no failed requests (after one retry on the next edge)"

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.figures: dict[str, Any] = {}

    def routes(self) -> list[list[str]]:
        edges = [edge["url"] for edge in self.state["regions"]["r1"]["edges"]]
        return [edges[i:] + edges[:i] for i in range(len(edges))]

    def inject(self) -> None:
        raise NotImplementedError

    def remove(self) -> None:
        raise NotImplementedError

    async def during(self, start: float, fault: tuple[float, float]) -> list[Sample]:
        """Extra traffic of the drill's own, run beside the steady load."""
        return []

    def settle(self) -> None:
        """After the load, before the topology stops."""

    def checks(self, samples: list[Sample], fault: tuple[float, float]) -> dict[str, bool]:
        return {}

    def failed(self, sample: Sample) -> bool:
        """Does this steady request count as failed?"""
        return not 200 <= sample.status < 400


class RedisKill(Drill):
    name = "redis-kill"

    def inject(self) -> None:
        send_signal(self.state, "r1.redis", "kill")

    def remove(self) -> None:
        redis = self.state["regions"]["r1"]["redis"]
        server = RedisServer(Path(redis["dir"]), port=redis["port"], detach=True).start()
        assert server.proc is not None
        redis["pid"] = server.proc.pid  # `down` stops the new one


class RedisPause(Drill):
    name = "redis-pause"

    def inject(self) -> None:
        send_signal(self.state, "r1.redis", "pause")

    def remove(self) -> None:
        send_signal(self.state, "r1.redis", "resume")


class ProxyFault(Drill):
    """A fault set on the region's Redis fault proxy, cleared at the end."""

    command = ""

    def inject(self) -> None:
        reply = send_command(self.state["regions"]["r1"]["proxy"]["control"], self.command)
        if reply != "ok":
            raise SystemExit(f"fault proxy refused {self.command!r}: {reply}")

    def remove(self) -> None:
        send_command(self.state["regions"]["r1"]["proxy"]["control"], "clear")


class RedisBlackhole(ProxyFault):
    name, command = "redis-blackhole", "blackhole on"


class RedisSlow(ProxyFault):
    name, command = "redis-slow", "latency 200"


class GlobalDown(Drill):
    """Kill the global store's Redis; its data must survive and the edges' backlog land."""

    name = "global-down"
    l2_checks = False

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(state)
        self.redis = state["global"]["redis"]
        self.before: set[bytes] = set()
        self.returned = 0.0

    def _keys(self) -> set[bytes]:
        with Redis(port=self.redis["port"], socket_timeout=5) as client:
            return set(client.scan_iter(match="global:e:*", count=1000))

    def inject(self) -> None:
        self.before = self._keys()
        send_signal(self.state, "global.redis", "kill")

    def remove(self) -> None:
        server = RedisServer(
            Path(self.redis["dir"]), port=self.redis["port"], detach=True, durable=True
        ).start()
        assert server.proc is not None
        self.redis["pid"] = server.proc.pid
        self.returned = time.monotonic()
        self.figures["drained_after_s"] = self._drained(timeout=60)

    def _pending(self) -> float:
        return sum(
            _metric(edge["url"], "edge_write_behind_pending")
            for edge in self.state["regions"]["r1"]["edges"]
        )

    def _drained(self, timeout: float) -> float | None:
        """Seconds from the store's return until no edge holds a write for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._pending() == 0:
                return round(time.monotonic() - self.returned, 2)
            time.sleep(0.1)
        return None

    def settle(self) -> None:
        self._drained(timeout=60)
        after = self._keys()
        self.figures.update(
            entries_before=len(self.before),
            entries_after=len(after),
            entries_lost=len(self.before - after),
            dropped=sum(
                _metric(edge["url"], "edge_write_behind_dropped_total")
                for edge in self.state["regions"]["r1"]["edges"]
            ),
        )
        self.after = after

    def checks(self, samples: list[Sample], fault: tuple[float, float]) -> dict[str, bool]:
        computed = {
            f"global:e:{s.key}".encode()
            for s in samples
            if s.t >= fault[0] and s.tier in ("MISS", "SEMANTIC") and s.key
        }
        missing = computed - self.after
        self.figures.update(entries_made_since_fault=len(computed), of_them_missing=len(missing))
        drained = self.figures.get("drained_after_s")
        return {
            "write-behind backlog drained within 30 s of the store's return": drained is not None
            and drained <= 30,
            "every entry the store held before the fault is still there": not (
                self.before - self.after
            ),
            "every entry made since the fault began is in the store": bool(computed)
            and not missing,
            "no write dropped by a full queue": self.figures["dropped"] == 0,
        }


class EncoderFault(Drill):
    """Every edge's encoder raises (or hangs) through the admin API, then works again."""

    name = "encoder-fail"
    fault = "raise"
    l2_checks = False
    latency_budget_ms = COMPUTE_TIMEOUT_MS

    def _set(self, fault: str | None) -> None:
        for edge in self.state["regions"]["r1"]["edges"]:
            response = httpx.post(
                edge["url"] + "/admin/faults",
                json={"encoder": fault},
                headers={"authorization": f"Bearer {self.state['admin_key']}"},
                timeout=10,
            )
            response.raise_for_status()

    def inject(self) -> None:
        self._set(self.fault)

    def remove(self) -> None:
        self._set(None)

    def checks(self, samples: list[Sample], fault: tuple[float, float]) -> dict[str, bool]:
        start, end = fault
        during = [s for s in samples if start + 1 <= s.t < end]
        fallbacks = [s for s in during if s.tier == "FALLBACK"]
        hits = [s for s in during if s.tier.startswith("HIT-")]
        back = [s.t - end for s in samples if s.t >= end and s.tier == "MISS" and not s.degraded]
        self.figures.update(
            first_fallback_after_s=min(
                (round(s.t - start, 2) for s in samples if s.t >= start and s.tier == "FALLBACK"),
                default=None,
            ),
            fallbacks_during_fault=len(fallbacks),
            hits_during_fault=len(hits),
            miss_again_after_s=round(min(back), 2) if back else None,
        )
        return {
            "misses during the fault answered with fallbacks": bool(fallbacks),
            "every fallback flagged degraded": all(s.degraded for s in fallbacks),
            "hits kept coming from the caches": bool(hits),
            "no computed answer (MISS) while the model was down": not any(
                s.tier == "MISS" and s.t + s.ms / 1000 < end for s in during
            ),
            "normal answers (MISS) again within 10 s of the model's return": bool(back)
            and min(back) <= 10,
        }


class EncoderHang(EncoderFault):
    name = "encoder-hang"
    fault = "hang"


class EdgeKill(Drill):
    """SIGKILL one edge of the region; start it again (same port and settings) later."""

    name = "edge-kill"
    l2_checks = False

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(state)
        self.edge = state["regions"]["r1"]["edges"][0]

    def inject(self) -> None:
        send_signal(self.state, "r1.edge1", "kill")

    def remove(self) -> None:
        self.figures["restart_ready_s"] = _restart_edge(self.edge)

    def checks(self, samples: list[Sample], fault: tuple[float, float]) -> dict[str, bool]:
        log = Path(self.edge["log"]).read_text().splitlines()
        prewarmed = [json.loads(line) for line in log if '"prewarmed"' in line]
        last = prewarmed[-1] if prewarmed else {}
        self.figures["prewarm"] = last
        warm = int(last.get("promoted", 0)) + int(last.get("computed", 0))
        ready = self.figures.get("restart_ready_s")
        return {
            "restarted edge ready within 60 s": ready is not None and ready <= 60,
            "restarted edge prewarmed >= 10 of the region's popular prompts": warm >= 10,
        }


class RegionFailover(Drill):
    """Both edges of r1 die; r1's clients fail over to r2's edges; r1 returns at the end."""

    name = "region-failover"
    regions = 2
    l2_checks = False
    latency_budget_ms = None  # r2 computes what its tiers lack: latency is reported only

    def routes(self) -> list[list[str]]:
        home = [edge["url"] for edge in self.state["regions"]["r1"]["edges"]]
        away = [edge["url"] for edge in self.state["regions"]["r2"]["edges"]]
        return [[home[i], away[i]] for i in range(len(home))]

    def inject(self) -> None:
        for name in ("r1.edge1", "r1.edge2"):
            send_signal(self.state, name, "kill")

    def remove(self) -> None:
        for edge in self.state["regions"]["r1"]["edges"]:
            _restart_edge(edge)

    def checks(self, samples: list[Sample], fault: tuple[float, float]) -> dict[str, bool]:
        away = {edge["url"] for edge in self.state["regions"]["r2"]["edges"]}
        served = [s for s in samples if s.edge in away]
        computes = Counter(s.path for s in served if s.tier == "MISS")
        self.figures.update(
            answered_by_r2=len(served),
            r2_tiers=dict(Counter(s.tier for s in served)),
            most_computes_of_one_prompt_in_r2=max(computes.values(), default=0),
        )
        return {
            "r2 answered r1's clients during the fault": bool(served),
            "r2 computed each prompt at most once": max(computes.values(), default=0) <= 1,
            "r2 found answers in the global store": any(s.tier == "HIT-GLOBAL" for s in served),
        }


def _flood(url: str, start: float, fault: tuple[float, float]) -> tuple[float, list[Sample]]:
    """The overload drill's miss traffic, from a process of its own so that it does not slow
    the steady clients' event loop (and their measured latency). It uses geventhttpclient,
    whose C parser costs a fraction of httpx's CPU per request: on a small machine an httpx
    sender cannot reach the rate the drill asks for.

    First the edge's miss capacity is measured when busy: 128 never-seen prompts, 32 at a
    time (a full encoder batch, so batching's gain is in the figure). From the fault's start
    to its end, never-seen prompts go out open loop at 3x that rate; afterwards one at a time,
    to see misses served again. `start` is the drill's CLOCK_MONOTONIC origin, shared by
    every process of the machine. Returns the capacity and the flood's samples.
    """
    import gevent
    from gevent.pool import Pool
    from geventhttpclient import HTTPClient

    fresh = iter(unique_prompts(12000, seed=97))  # distinct slots, mostly: no semantic hits
    parts = urlsplit(url)
    client = HTTPClient(parts.hostname or "", parts.port, concurrency=256, network_timeout=10)
    pool = Pool(256)
    samples: list[Sample] = []

    def one(keep: bool = True) -> None:
        path = "/v1/playlists?" + urlencode({"q": next(fresh), "n": 30})
        sent = time.monotonic()
        sample = Sample(sent - start, 0.0, 0, "ERROR", url, path, stream="flood")
        try:
            response = client.get(path)
            response.read()
            sample.status, sample.tier = response.status_code, str(response.get("x-cache", ""))
            sample.retry_after = response.get("retry-after") is not None
        except (OSError, gevent.Timeout):
            pass
        sample.ms = (time.monotonic() - sent) * 1000
        if keep:
            samples.append(sample)

    began = time.monotonic()
    for _ in range(4):
        gevent.joinall([pool.spawn(one, False) for _ in range(32)])
    capacity = 128 / (time.monotonic() - began)
    gevent.sleep(max(0.0, start + fault[0] - time.monotonic()))
    per_tick = max(1, round(3 * capacity / 20))
    while time.monotonic() < start + fault[1]:  # open loop: the rate does not wait for answers
        for _ in range(per_tick):
            pool.spawn(one)
        gevent.sleep(0.05)
    pool.join()
    while time.monotonic() < start + fault[1] + 8:
        one()
        gevent.sleep(0.1)
    client.close()
    return capacity, samples


class Overload(Drill):
    """Never-seen prompts at 3x the miss capacity of edge 1 while cached prompts keep coming."""

    name = "overload"
    l2_checks = False
    latency_budget_ms = None  # hits have their own target below
    no_failures = "no steady request failed (a miss shed with Retry-After is no failure)"
    HIT_P99_MS = 500.0
    MEMORY_FACTOR = 1.25

    def __init__(self, state: dict[str, Any]) -> None:
        super().__init__(state)
        self.edge = state["regions"]["r1"]["edges"][0]
        self.rss: list[tuple[float, int]] = []

    def routes(self) -> list[list[str]]:
        return [[edge["url"]] for edge in self.state["regions"]["r1"]["edges"]]  # no retry

    def _rss(self) -> int:
        """Resident bytes of the edge and its server workers (its process group)."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == self.edge["pid"]:  # process group id
                total += int(fields[21]) * os.sysconf("SC_PAGE_SIZE")  # rss in pages
        return total

    def failed(self, sample: Sample) -> bool:
        """A steady request for an uncached prompt may be shed like the flood's."""
        return super().failed(sample) and not (sample.status == 503 and sample.retry_after)

    def inject(self) -> None:
        """The flood process starts it on time."""

    def remove(self) -> None:
        """The flood process stops it on time."""

    async def during(self, start: float, fault: tuple[float, float]) -> list[Sample]:
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            flood = loop.run_in_executor(pool, _flood, self.edge["url"], start, fault)
            while not flood.done():
                self.rss.append((time.monotonic() - start, self._rss()))
                await asyncio.sleep(0.25)
            capacity, samples = await flood
        self.figures["miss_capacity_rps"] = round(capacity, 1)
        self.figures["flood_rps"] = round(3 * capacity, 1)
        return samples

    def checks(self, samples: list[Sample], fault: tuple[float, float]) -> dict[str, bool]:
        start, end = fault
        steady = [s for s in samples if s.stream == "steady"]
        cached = {s.path for s in steady if s.t < start and s.status == 200}
        hits = [s for s in steady if start <= s.t < end and s.path in cached]
        flood = [s for s in samples if s.stream == "flood" and s.t < end]
        shed = [s for s in flood if s.status == 503]
        after = [s for s in samples if s.stream == "flood" and s.t >= end]
        first_ok = min((s.t - end for s in after if s.status == 200), default=None)
        before = [rss for t, rss in self.rss if t < start]
        peak = max((rss for t, rss in self.rss if start <= t < end + 5), default=0)
        base = max(before, default=0)
        hit_p99 = float(np.percentile([s.ms for s in hits], 99)) if hits else float("nan")
        self.figures.update(
            hits_during_flood=len(hits),
            hit_p99_ms=round(hit_p99, 2),
            flood_requests=len(flood),
            flood_shed_503=len(shed),
            flood_served=sum(s.status == 200 for s in flood),
            rss_before_mb=round(base / 2**20, 1),
            rss_peak_mb=round(peak / 2**20, 1),
            misses_served_again_after_s=None if first_ok is None else round(first_ok, 2),
        )
        return {
            "every request for a cached prompt succeeded during the flood": bool(hits)
            and all(s.status in (200, 304) for s in hits),
            f"their p99 <= {self.HIT_P99_MS:.0f} ms": hit_p99 <= self.HIT_P99_MS,
            "misses beyond capacity shed with 503 + Retry-After": bool(shed)
            and all(s.retry_after for s in shed),
            "no flood request failed otherwise": all(s.status in (200, 503) for s in flood),
            f"memory within {self.MEMORY_FACTOR}x of before": 0 < peak <= self.MEMORY_FACTOR * base,
            "misses served again within 5 s of the flood's end": first_ok is not None
            and first_ok <= 5,
        }


def analyse(samples: list[Sample], fault: tuple[float, float], drill: Drill) -> dict[str, Any]:
    start, end = fault
    steady = [s for s in samples if s.stream == "steady"]
    before = [s.ms for s in steady if s.t < start and s.status == 200]
    during = [s.ms for s in steady if start <= s.t < end]
    failed = sum(1 for s in steady if drill.failed(s))
    back = [s.t - end for s in samples if s.t >= end and s.tier == "HIT-L2"]
    baseline_p99 = float(np.percentile(before, 99)) if before else float("nan")
    fault_p99 = float(np.percentile(during, 99)) if during else float("nan")
    checks = {drill.no_failures: failed == 0}
    budget = None
    if drill.latency_budget_ms is not None:
        budget = 2 * baseline_p99 + drill.latency_budget_ms
        checks[f"p99 during fault <= 2 x baseline + {drill.latency_budget_ms:.0f} ms"] = (
            fault_p99 <= budget
        )
    if drill.l2_checks:
        checks["HIT-L2 again within 10 s of the fault ending"] = bool(back) and min(back) <= 10
    checks.update(drill.checks(samples, fault))
    return {
        "requests": len(samples),
        "failed": failed,
        "baseline_p99_ms": round(baseline_p99, 2),
        "fault_p99_ms": round(fault_p99, 2),
        "p99_budget_ms": None if budget is None else round(budget, 2),
        "l2_back_after_s": round(min(back), 2) if back else None,
        "tiers": dict(Counter(s.tier for s in samples)),
        **drill.figures,
        "checks": checks,
        "passed": all(checks.values()),
    }


def timeline(samples: list[Sample], fault: tuple[float, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per: dict[int, list[Sample]] = defaultdict(list)
    for s in samples:
        per[int(s.t)].append(s)
    seconds = sorted(per)
    tiers = sorted({s.tier for s in samples})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6.5), sharex=True)
    for stream in sorted({s.stream for s in samples}, reverse=True):  # steady first
        for pct, style in ((50, "-"), (99, "--")):
            xs = [t for t in seconds if any(s.stream == stream for s in per[t])]
            top.plot(
                xs,
                [np.percentile([s.ms for s in per[t] if s.stream == stream], pct) for t in xs],
                style,
                label=f"{stream} p{pct} ms",
            )
    top.plot(
        seconds,
        [sum(not 200 <= s.status < 400 for s in per[t]) for t in seconds],
        "r.",
        label="not 2xx/3xx per s",
    )
    top.set_yscale("symlog")
    top.legend(loc="upper left")
    bottom.stackplot(
        seconds,
        [[sum(s.tier == tier for s in per[t]) for t in seconds] for tier in tiers],
        labels=[tier or "(none: 503)" for tier in tiers],
    )
    bottom.set_ylabel("answers/s by X-Cache")
    bottom.set_xlabel("seconds")
    bottom.legend(loc="upper left", fontsize="small")
    for ax in (top, bottom):
        ax.axvspan(*fault, color="orange", alpha=0.15)
    top.set_title("Drill timeline (shaded: fault injected)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(name: str, duration: float, out: Path, artifacts: Path, concurrency: int) -> bool:
    out.mkdir(parents=True, exist_ok=True)
    drill_class = DRILLS[name]
    state_file = out / "topology" / "state.json"
    if state_file.exists():
        raise SystemExit(f"{state_file} exists: a topology from an earlier run may still be up")
    shutil.rmtree(state_file.parent, ignore_errors=True)  # start from empty stores
    started = _topology(
        state_file,
        "up",
        "--regions",
        str(drill_class.regions),
        "--edges-per-region",
        "2",
        "--artifacts",
        str(artifacts),
    )
    if started.returncode != 0:
        raise SystemExit(f"topology did not start: {started.stderr[-2000:]}")
    try:
        state = json.loads(state_file.read_text())
        entries = corpus_file.build(500, seed=11)
        drill = drill_class(state)
        fault = (duration / 3, 2 * duration / 3)

        urls = [edge["url"] for region in state["regions"].values() for edge in region["edges"]]

        async def scenario() -> tuple[list[Sample], list[tuple[float, bool]]]:
            start = time.monotonic()
            steady = asyncio.create_task(
                _load(drill.routes(), entries, duration, concurrency, seed=1, start=start)
            )
            watch = asyncio.create_task(_watch(urls, start, duration))
            extra = asyncio.create_task(drill.during(start, fault))
            await asyncio.sleep(fault[0])
            print(f"  {fault[0]:.0f} s: injecting {name}", flush=True)
            await asyncio.to_thread(drill.inject)
            await asyncio.sleep(max(0.0, start + fault[1] - time.monotonic()))
            print(f"  {fault[1]:.0f} s: removing {name}", flush=True)
            await asyncio.to_thread(drill.remove)
            return await steady + await extra, await watch

        samples, watched = asyncio.run(scenario())
        drill.settle()
        state_file.write_text(json.dumps(state, indent=2))  # restarted processes' PIDs
        processes = list(named(state))
    finally:
        _topology(state_file, "down")
    with (out / "samples.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", "ms", "status", "tier", "edge", "stream", "path"])
        writer.writerows(
            (f"{s.t:.3f}", f"{s.ms:.2f}", s.status, s.tier, s.edge, s.stream, s.path)
            for s in sorted(samples, key=lambda s: s.t)
        )
    result = analyse(samples, fault, drill)
    result.update(detection(watched, fault))
    result["passed"] = result.pop("passed")
    timeline(samples, fault, out / "timeline.png")
    lines = [
        f"# Drill {name}",
        "",
        f"**Verdict: {'PASS' if result['passed'] else 'FAIL'}** ({duration:g} s, fault from "
        f"{fault[0]:.0f} s to {fault[1]:.0f} s, {concurrency} steady clients; topology: "
        f"{', '.join(processes)})",
        "",
        *(f"- {'✓' if ok else '✗'} {check}" for check, ok in result["checks"].items()),
        "",
        "```json",
        json.dumps({k: v for k, v in result.items() if k != "checks"}, indent=2),
        "```",
        "",
        "![timeline](timeline.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return bool(result["passed"])


DRILLS: dict[str, type[Drill]] = {
    cls.name: cls
    for cls in (
        RedisKill,
        RedisPause,
        RedisBlackhole,
        RedisSlow,
        GlobalDown,
        EncoderFault,
        EncoderHang,
        EdgeKill,
        RegionFailover,
        Overload,
    )
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.drill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=sorted(DRILLS))
    parser.add_argument("--duration", type=float, default=45.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=8, help="steady clients")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts/default"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or Path("bench-out/drills") / args.name
    return 0 if run(args.name, args.duration, out, args.artifacts, args.concurrency) else 1


if __name__ == "__main__":
    sys.exit(main())
