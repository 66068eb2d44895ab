"""`python -m loadtest.bench tiers`: the cache tiers behind L1, measured side by side.

1. L2 hits: `TieredCache.get` with L1 emptied before each call (so every read is an L2 hit
   on a real redis-server, with the tier's decoding, breaker and timeout), interleaved with
   a raw redis-py GET of the same payload on its own connection; p99 of each and the ratio.
2. Global-store hits: the same over the diskcache tier (L1 emptied, no L2).
3. A Zipf workload (exponent 1.0, 30 % paraphrases) through edge services sharing L2 and
   the global store: the share of answers per `X-Cache` label.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
from redis.asyncio import Redis
from tqdm import tqdm

from cache.base import Entry
from cache.disk import DiskTier
from cache.memory import MemoryTier
from cache.redis_tier import RedisTier
from cache.tiered import TieredCache
from edge.app import create_app
from edge.settings import EdgeSettings
from loadtest.prompts import zipf_workload
from loadtest.redis_server import RedisServer
from models.artifacts import Artifacts
from models.errors import IntentError


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


async def _tier_hits(tiered: TieredCache, l1: MemoryTier, key: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        l1.clear()
        start = time.perf_counter()
        found = await tiered.get(key)
        times.append(time.perf_counter() - start)
        assert found is not None
    return times


async def bench_remote(body: bytes, samples: int) -> dict[str, float]:
    results: dict[str, float] = {}
    now = time.time()
    entry = Entry(body, now, now + 3600, now + 4200, now + 90000, etag="e", tags=("t:1",))
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            tier = RedisTier(Redis.from_url(server.url), timeout=1.0)
            raw = Redis.from_url(server.url)
            l1 = MemoryTier(1 << 24)
            tiered = TieredCache([l1, tier])
            await tiered.set("k", entry)
            await raw.set("raw", body)
            for _ in range(200):  # warm both connections
                await raw.get("raw")
                await tier.get("k")
            tier_times: list[float] = []
            raw_times: list[float] = []
            for _ in tqdm(range(samples // 100), desc="L2 vs raw GET", unit="round"):
                tier_times += await _tier_hits(tiered, l1, "k", 100)
                for _ in range(100):
                    start = time.perf_counter()
                    await raw.get("raw")
                    raw_times.append(time.perf_counter() - start)
            results.update(
                l2_p50=_p(tier_times, 50),
                l2_p99=_p(tier_times, 99),
                raw_p50=_p(raw_times, 50),
                raw_p99=_p(raw_times, 99),
            )
            await tier.close()
            await raw.aclose()
        finally:
            server.stop()
        disk = DiskTier(Path(tmp) / "global")
        l1 = MemoryTier(1 << 24)
        tiered = TieredCache([l1, disk])
        await tiered.set("k", entry)
        disk_times = await _tier_hits(tiered, l1, "k", samples)
        results.update(global_p50=_p(disk_times, 50), global_p99=_p(disk_times, 99))
        await disk.close()
    return results


async def bench_workload(
    artifacts: Artifacts, requests: int, prompts: int, edges: int
) -> Counter[str]:
    """Requests go round-robin to `edges` edge services sharing one Redis and one store."""
    labels: Counter[str] = Counter()
    workload = zipf_workload(requests, prompts, exponent=1.0, paraphrase_share=0.3, seed=5)
    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            settings = EdgeSettings(
                warmup=False,
                verify_artifacts=False,
                l2_url=server.url,
                global_url=str(Path(tmp) / "global"),
                data_dir=str(Path(tmp) / "data"),
                events_url="none",
                prewarm_top=0,
                log_level="warning",
            )
            async with AsyncExitStack() as stack:
                services = []
                for _ in range(edges):
                    app = create_app(settings, artifacts=artifacts)
                    await stack.enter_async_context(app.lifespan())
                    await app.node.wait_ready()
                    services.append(app.node.require())
                for i, prompt in enumerate(tqdm(workload, desc="zipf workload", unit="req")):
                    service = services[i % edges]
                    try:
                        request = service.parse_get(urlencode({"q": prompt, "n": 30}).encode())
                        intent, key = service.intent(request)
                    except IntentError:
                        labels["refused (contradictory slots)"] += 1
                        continue
                    answer = await service.answer(request, intent, key, None)
                    labels[answer.headers["x-cache"]] += 1
        finally:
            server.stop()
    return labels


def run(artifacts: Artifacts, *, samples: int, requests: int, prompts: int, edges: int) -> None:
    body = b'{"tracks":[' + b",".join([b'{"id":"trk0000001","title":"x"}'] * 60) + b"]"
    remote = asyncio.run(bench_remote(body, samples))
    labels = asyncio.run(bench_workload(artifacts, requests, prompts, edges))
    print(f"\npayload {len(body)} bytes, {samples} reads each, interleaved")
    rows = (
        ("L2 hit (TieredCache, L1 empty)", "l2"),
        ("raw redis-py GET", "raw"),
        ("global-store hit (diskcache)", "global"),
    )
    for name, k in rows:
        print(f"  {name:<32} p50 {remote[k + '_p50']:.3f} ms  p99 {remote[k + '_p99']:.3f} ms")
    print(
        f"  {'L2 hit p99 / raw GET p99':<32} "
        f"{remote['l2_p99'] / remote['raw_p99']:.2f}   (target <= 4)"
    )
    total = sum(labels.values())
    print(
        f"\nZipf s=1.0 over {prompts} intents, 30 % paraphrases, {total} requests "
        f"round-robin over {edges} edges sharing L2 and the global store:"
    )
    for label, count in labels.most_common():
        print(f"  {label:<32} {count:>6}  {count / total:6.1%}")
    hits = total - labels["MISS"] - labels["refused (contradictory slots)"]
    print(f"  hit ratio (everything but MISS and refused): {hits / total:.1%}")
