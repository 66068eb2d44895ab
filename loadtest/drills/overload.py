"""The overload drill: a flood of never-seen prompts beyond the edge's miss capacity, sent
from a process of its own, while cached prompts keep coming."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import numpy as np

from loadtest.drills.faults import Drill
from loadtest.drills.samples import Sample
from loadtest.prompts import unique_prompts


def flood(url: str, start: float, fault: tuple[float, float]) -> tuple[float, list[Sample]]:
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
            flooding = loop.run_in_executor(pool, flood, self.edge["url"], start, fault)
            while not flooding.done():
                self.rss.append((time.monotonic() - start, self._rss()))
                await asyncio.sleep(0.25)
            capacity, samples = await flooding
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
