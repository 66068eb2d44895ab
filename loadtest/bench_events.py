"""`python -m loadtest.bench events`: event ingest throughput and accept-to-session lag.

Starts a redis-server and one edge process (`python -m edge`, granian) on free loopback
ports, then measures, side by side in one run:

1. the log's own append rate: `RedisEventLog.append` of 100-event batches from this process
   (the same Lua script, the same server), `--clients` at once;
2. ingest over HTTP: POST /v1/events with 100-event batches, `--clients` at once, for
   `--seconds`; printed as events/s and as a ratio to (1);
3. how long the edge's session consumer takes to work off the backlog (2) left;
4. end-to-end lag: single early-skip events of fresh users, one every 20 ms; for each, the
   time from the 200 response to the moment the region's session state (the sorted set the
   edge's consumer writes) holds the track; p50/p99.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import os
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from redis.asyncio import Redis

from loadtest.launch import served_edge
from loadtest.net import free_port
from loadtest.redis_server import RedisServer
from regional.events import EventIn, Pseudonymizer, RedisEventLog

_serial = itertools.count()


def _event(user: str, kind: str = "play", dwell_ms: int = 60_000) -> dict[str, Any]:
    return {
        "event_id": f"bench-{next(_serial):09d}",
        "type": kind,
        "playlist": "fp-bench",
        "prompt_key": "pk-bench",
        "track_id": f"t{next(_serial) % 20_000}",
        "position": 3,
        "dwell_ms": dwell_ms,
        "ts": "2026-11-23T10:00:00+00:00",
        "user": user,
    }


async def _raw_append(url: str, key: bytes, seconds: float, clients: int) -> float:
    log = RedisEventLog(Redis.from_url(url), "bench-raw")
    pseudonymizer = Pseudonymizer(key, "bench-raw")
    done = 0
    end = time.monotonic() + seconds

    async def client(number: int) -> None:
        nonlocal done
        while time.monotonic() < end:
            batch = [
                pseudonymizer.stored(EventIn(**{**e, "ts": datetime.now(UTC)}))
                for e in (_event(f"raw-{number}-{i % 50}") for i in range(100))
            ]
            await log.append(batch)
            done += len(batch)

    began = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    rate = done / (time.monotonic() - began)
    await log.close()
    return rate


async def _http_ingest(base: str, seconds: float, clients: int) -> tuple[float, list[float]]:
    done = 0
    latencies: list[float] = []
    end = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:

        async def client(number: int) -> None:
            nonlocal done
            while time.monotonic() < end:
                batch = [_event(f"http-{number}-{i % 50}") for i in range(100)]
                sent = time.perf_counter()
                response = await http.post("/v1/events", json={"events": batch})
                latencies.append((time.perf_counter() - sent) * 1000)
                response.raise_for_status()
                done += response.json()["accepted"]

        began = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(clients)))
    return done / (time.monotonic() - began), latencies


async def _lag(
    base: str, redis_url: str, key: bytes, samples: int, wait: float = 10.0
) -> list[float]:
    """Accept-to-session-state times; one poller checks every waiting event per 2 ms tick."""
    redis = Redis.from_url(redis_url)
    lags: list[float] = []
    waiting: dict[tuple[str, str], float] = {}  # (session key, track) -> accepted at
    sending = True

    async def one(http: httpx.AsyncClient, number: int) -> None:
        user = f"lag-{number}-{secrets.token_hex(4)}"
        event = _event(user, kind="skip", dwell_ms=1_000)
        response = await http.post("/v1/events", json={"events": [event]})
        response.raise_for_status()
        hashed = hmac.new(key, user.encode(), hashlib.sha256).hexdigest()[:32]
        waiting[(f"session:{{r1:{hashed}}}:skipped", event["track_id"])] = time.perf_counter()

    async def poll() -> None:
        while sending or waiting:
            probes = list(waiting)
            if probes:
                async with redis.pipeline(transaction=False) as pipe:
                    for name, track in probes:
                        pipe.zscore(name, track)
                    scores = await pipe.execute()
                now = time.perf_counter()
                for probe, score in zip(probes, scores, strict=True):
                    if score is not None:
                        lags.append((now - waiting.pop(probe)) * 1000)
                    elif now - waiting[probe] > wait:
                        del waiting[probe]  # never seen: counted as missing
            await asyncio.sleep(0.002)

    poller = asyncio.create_task(poll())
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        pending = []
        for number in range(samples):
            pending.append(asyncio.create_task(one(http, number)))
            await asyncio.sleep(0.02)
            if number % 100 == 99:
                print(f"  lag: {number + 1}/{samples} sent", flush=True)
        await asyncio.gather(*pending)
    sending = False
    await poller
    await redis.aclose()
    return lags


def run(artifacts: Path, seconds: float, clients: int, samples: int) -> dict[str, float]:
    key = secrets.token_hex(16)
    with tempfile.TemporaryDirectory() as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        port = free_port()
        env = {
            **os.environ,
            "EDGE_ARTIFACTS": str(artifacts),
            "EDGE_HOST": "127.0.0.1",
            "EDGE_PORT": str(port),
            "EDGE_REGION": "r1",
            "EDGE_L2_URL": redis.url,
            "EDGE_DATA_DIR": str(Path(tmp) / "edge"),
            "EDGE_USER_HASH_KEY": key,
            "EDGE_WARMUP": "false",
        }
        try:
            with served_edge(env, port) as base:
                print(f"  raw append, {clients} clients, {seconds:g} s ...", flush=True)
                raw = asyncio.run(_raw_append(redis.url, key.encode(), seconds, clients))
                print(f"  HTTP ingest, {clients} clients, {seconds:g} s ...", flush=True)
                http, latencies = asyncio.run(_http_ingest(base, seconds, clients))
                print("  waiting for the session consumer to catch up ...", flush=True)
                began = time.monotonic()
                # Sentinels for 64 users reach every partition: all seen means all drained.
                caught_up = asyncio.run(_lag(base, redis.url, key.encode(), 64, wait=120))
                drain = time.monotonic() - began if len(caught_up) == 64 else float("nan")
                print(f"  lag, {samples} single events ...", flush=True)
                lags = asyncio.run(_lag(base, redis.url, key.encode(), samples))
        finally:
            redis.stop()
    result = {
        "raw_append_eps": raw,
        "http_ingest_eps": http,
        "ratio": http / raw,
        "batch_p50_ms": float(np.percentile(latencies, 50)),
        "batch_p99_ms": float(np.percentile(latencies, 99)),
        "lag_p50_ms": float(np.percentile(lags, 50)) if lags else float("nan"),
        "lag_p99_ms": float(np.percentile(lags, 99)) if lags else float("nan"),
        "lag_seen": len(lags) / samples,
        "backlog_drained_s": drain,
    }
    print(f"  raw append (RedisEventLog)   {raw:9.0f} events/s")
    print(f"  HTTP ingest (POST, 100/batch){http:9.0f} events/s")
    print(f"  ingest / raw append          {result['ratio']:9.2f}")
    print(
        f"  batch latency p50 / p99      {result['batch_p50_ms']:.1f} / "
        f"{result['batch_p99_ms']:.1f} ms"
    )
    print(f"  backlog after the ingest run drained in {drain:.1f} s")
    print(
        f"  accept -> session state      p50 {result['lag_p50_ms']:.1f} ms  "
        f"p99 {result['lag_p99_ms']:.1f} ms  ({len(lags)}/{samples} seen within 10 s)"
    )
    return result
