"""What every drill runs on: the steady load, the /readyz watcher and topology control."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from loadtest import corpus as corpus_file
from loadtest.drills.samples import Sample
from loadtest.launch import StartError, spawn, wait_started


async def request(http: httpx.AsyncClient, candidates: list[str], path: str) -> Sample:
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


async def load(
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
            sample = await request(http, candidates, f"/v1/playlists?{corpus_file.query(entry)}")
            sample.t = now - start
            samples.append(sample)
            await asyncio.sleep(max(0.0, 0.02 - (time.monotonic() - now)))  # ~50 rps a client

    async with httpx.AsyncClient(timeout=10) as http:
        await asyncio.gather(*(client(http, routes[i % len(routes)]) for i in range(concurrency)))
    return samples


async def watch(urls: list[str], start: float, seconds: float) -> list[tuple[float, bool]]:
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


def topology(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m loadtest.topology` on the drill's state file, its output captured."""
    cmd = [sys.executable, "-m", "loadtest.topology", "--state", str(state), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def metric(url: str, name: str) -> float:
    """Sum of a Prometheus metric's samples on one edge (0 when absent or unreachable)."""
    try:
        text = httpx.get(url + "/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", re.MULTILINE)
    return sum(float(value) for value in pattern.findall(text))


def restart_edge(edge: dict[str, Any]) -> float | None:
    """Start a killed edge again with its settings; seconds until ready (None: not in 120 s,
    or it exited first, which is printed with the end of its log)."""
    began = time.monotonic()
    log = Path(edge["log"])
    proc = spawn([sys.executable, "-m", "edge"], edge["env"], log)
    edge["pid"] = proc.pid
    try:
        wait_started(proc, edge["port"], name=f"edge on port {edge['port']}", log=log)
    except StartError as exc:
        print(f"  {exc}", flush=True)
        return None
    return time.monotonic() - began
