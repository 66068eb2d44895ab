"""Failover drills: steady load on a local region, a fault at a set time, a verdict.

    python -m loadtest.drill redis-kill --duration 40 --out bench-out/drills/redis-kill

A drill starts its own topology (one region, two edges, Redis behind the fault proxy),
drives a steady, bounded load from the corpus round-robin over the edges, injects the fault
at 1/3 of the run and removes it at 2/3, then stops everything it started. It writes
`samples.csv` (one row per request), `report.md` and `timeline.png` (p50/p99, rps, failures
and tier mix per second, fault start and end marked) and exits 1 when a target is missed.

Drills so far (targets for each: 0 failed requests; p99 during the fault <= 2 x baseline
p99 + the L2 timeout; L2 answers (HIT-L2) again within 10 s of the fault ending):
  redis-kill       SIGKILL the region's redis-server, start it again on the same port
  redis-blackhole  the fault proxy accepts and swallows: Redis never answers
  redis-slow       the fault proxy adds 200 ms each way to every Redis exchange
  edge-kill        SIGKILL one edge, start it again: clients fail over (one retry on the other
                   edge, as a load balancer would), so 0 failed requests; the restarted edge
                   is ready within 60 s with >= 10 of the region's popular prompts prewarmed
                   (no HIT-L2 target)
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from loadtest import corpus as corpus_file
from loadtest.faultproxy import send_command
from loadtest.net import wait_ready
from loadtest.redis_server import RedisServer
from loadtest.topology import spawn

L2_TIMEOUT_MS = 50.0  # the edge's default EDGE_REMOTE_TIMEOUT_MS


@dataclass
class Sample:
    t: float
    ms: float
    status: int
    tier: str


async def _load(
    urls: list[str], entries: list[dict[str, Any]], seconds: float, concurrency: int, seed: int
) -> list[Sample]:
    """`concurrency` clients for `seconds`, each request a Zipf-drawn corpus entry."""
    rng = np.random.default_rng(seed)
    weights = np.array([e["weight"] for e in entries])
    weights /= weights.sum()
    samples: list[Sample] = []
    start = time.monotonic()
    counter = 0

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal counter
        while (now := time.monotonic()) - start < seconds:
            entry = entries[int(rng.choice(len(entries), p=weights))]
            counter += 1
            first = counter  # other clients move the shared counter while this one waits
            path = f"/v1/playlists?{corpus_file.query(entry)}"
            began = time.monotonic()
            # Like a load balancer's client: an edge that refuses the connection or is not
            # ready (503 from /readyz's state) gets the request sent once to the next edge.
            status, tier = 0, "ERROR"
            for attempt in range(2):
                try:
                    response = await http.get(urls[(first + attempt) % len(urls)] + path)
                    status, tier = response.status_code, response.headers.get("x-cache", "")
                except httpx.TransportError:
                    status, tier = 0, "ERROR"
                if status not in (0, 503) or len(urls) == 1:
                    break
            samples.append(Sample(began - start, (time.monotonic() - began) * 1000, status, tier))
            await asyncio.sleep(max(0.0, 0.02 - (time.monotonic() - now)))  # ~50 rps a client

    async with httpx.AsyncClient(timeout=10) as http:
        await asyncio.gather(*(client(http) for _ in range(concurrency)))
    return samples


def _topology(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "loadtest.topology", "--state", str(state), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


class RedisKill:
    name = "redis-kill"

    def __init__(self, state: dict[str, Any]) -> None:
        self.redis = state["regions"]["r1"]["redis"]
        self.workdir = Path(state["run_dir"]) / "r1" / "redis"

    def inject(self) -> None:
        os.kill(self.redis["pid"], signal.SIGKILL)

    def remove(self) -> None:
        server = RedisServer(self.workdir, port=self.redis["port"], detach=True).start()
        assert server.proc is not None
        self.redis["pid"] = server.proc.pid  # `down` stops the new one


class ProxyFault:
    """A fault set on the region's Redis fault proxy, cleared at the end."""

    name = ""
    command = ""

    def __init__(self, state: dict[str, Any]) -> None:
        self.control = state["regions"]["r1"]["proxy"]["control"]

    def inject(self) -> None:
        reply = send_command(self.control, self.command)
        if reply != "ok":
            raise SystemExit(f"fault proxy refused {self.command!r}: {reply}")

    def remove(self) -> None:
        send_command(self.control, "clear")


class RedisBlackhole(ProxyFault):
    name, command = "redis-blackhole", "blackhole on"


class RedisSlow(ProxyFault):
    name, command = "redis-slow", "latency 200"


class EdgeKill:
    """SIGKILL one edge of the region; start it again (same port and settings) later."""

    name = "edge-kill"
    l2_checks = False

    def __init__(self, state: dict[str, Any]) -> None:
        self.edge = state["regions"]["r1"]["edges"][0]
        self.log = Path(self.edge["log"])
        self.ready_after: float | None = None

    def inject(self) -> None:
        # The whole process group: the server's worker processes die with it, as in a crash
        # of the machine's edge (killing only the parent leaves a worker serving the port).
        os.killpg(self.edge["pid"], signal.SIGKILL)

    def remove(self) -> None:
        began = time.monotonic()
        self.edge["pid"] = spawn([sys.executable, "-m", "edge"], self.edge["env"], self.log)
        if wait_ready(self.edge["port"], timeout=120):
            self.ready_after = time.monotonic() - began

    def checks(self) -> dict[str, bool]:
        prewarmed = [
            json.loads(line) for line in self.log.read_text().splitlines() if '"prewarmed"' in line
        ]
        last = prewarmed[-1] if prewarmed else {}
        warm = int(last.get("promoted", 0)) + int(last.get("computed", 0))
        self.prewarm = last
        return {
            "restarted edge ready within 60 s": self.ready_after is not None
            and self.ready_after <= 60,
            "restarted edge prewarmed >= 10 of the region's popular prompts": warm >= 10,
        }


def analyse(samples: list[Sample], fault: tuple[float, float], drill: Any = None) -> dict[str, Any]:
    start, end = fault
    before = [s.ms for s in samples if s.t < start and s.status == 200]
    during = [s.ms for s in samples if start <= s.t < end]
    failed = sum(1 for s in samples if not 200 <= s.status < 400)
    back = [s.t - end for s in samples if s.t >= end and s.tier == "HIT-L2"]
    baseline_p99 = float(np.percentile(before, 99)) if before else float("nan")
    fault_p99 = float(np.percentile(during, 99)) if during else float("nan")
    budget = 2 * baseline_p99 + L2_TIMEOUT_MS
    checks = {
        "no failed requests (after one retry on the other edge)": failed == 0,
        f"p99 during fault <= 2 x baseline + {L2_TIMEOUT_MS:.0f} ms": fault_p99 <= budget,
    }
    if getattr(drill, "l2_checks", True):
        checks["HIT-L2 again within 10 s of the fault ending"] = bool(back) and min(back) <= 10
    if hasattr(drill, "checks"):
        checks.update(drill.checks())
    return {
        "requests": len(samples),
        "failed": failed,
        "baseline_p99_ms": round(baseline_p99, 2),
        "fault_p99_ms": round(fault_p99, 2),
        "p99_budget_ms": round(budget, 2),
        "l2_back_after_s": round(min(back), 2) if back else None,
        "tiers": dict(Counter(s.tier for s in samples)),
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
    for pct, style in ((50, "-"), (99, "--")):
        top.plot(
            seconds,
            [np.percentile([s.ms for s in per[t]], pct) for t in seconds],
            style,
            label=f"p{pct} ms",
        )
    top.plot(
        seconds,
        [sum(not 200 <= s.status < 400 for s in per[t]) for t in seconds],
        "r.",
        label="failed/s",
    )
    top.set_yscale("symlog")
    top.legend(loc="upper left")
    bottom.stackplot(
        seconds,
        [[sum(s.tier == tier for s in per[t]) for t in seconds] for tier in tiers],
        labels=tiers,
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
    state_file = out / "topology" / "state.json"
    started = _topology(
        state_file, "up", "--regions", "1", "--edges-per-region", "2", "--artifacts", str(artifacts)
    )
    if started.returncode != 0:
        raise SystemExit(f"topology did not start: {started.stderr[-2000:]}")
    try:
        state = json.loads(state_file.read_text())
        urls = [edge["url"] for edge in state["regions"]["r1"]["edges"]]
        entries = corpus_file.build(500, seed=11)
        drill = DRILLS[name](state)
        fault = (duration / 3, 2 * duration / 3)

        async def scenario() -> list[Sample]:
            load = asyncio.create_task(_load(urls, entries, duration, concurrency, seed=1))
            await asyncio.sleep(fault[0])
            print(f"  {fault[0]:.0f} s: injecting {name}", flush=True)
            drill.inject()
            await asyncio.sleep(fault[1] - fault[0])
            print(f"  {fault[1]:.0f} s: removing {name}", flush=True)
            await asyncio.to_thread(drill.remove)
            return await load

        samples = asyncio.run(scenario())
        state_file.write_text(json.dumps(state, indent=2))  # the restarted Redis's PID
    finally:
        _topology(state_file, "down")
    with (out / "samples.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", "ms", "status", "tier"])
        writer.writerows((f"{s.t:.3f}", f"{s.ms:.2f}", s.status, s.tier) for s in samples)
    result = analyse(samples, fault, drill)
    if isinstance(drill, EdgeKill):
        result["restart_ready_s"] = drill.ready_after and round(drill.ready_after, 2)
        result["prewarm"] = drill.prewarm
    timeline(samples, fault, out / "timeline.png")
    lines = [
        f"# Drill {name}",
        "",
        f"**Verdict: {'PASS' if result['passed'] else 'FAIL'}** ({duration:g} s, fault from "
        f"{fault[0]:.0f} s to {fault[1]:.0f} s, {concurrency} clients over 2 edges)",
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


DRILLS: dict[str, type[RedisKill] | type[ProxyFault] | type[EdgeKill]] = {
    cls.name: cls for cls in (RedisKill, RedisBlackhole, RedisSlow, EdgeKill)
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.drill",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=sorted(DRILLS))
    parser.add_argument("--duration", type=float, default=45.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts/default"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or Path("bench-out/drills") / args.name
    return 0 if run(args.name, args.duration, out, args.artifacts, args.concurrency) else 1


if __name__ == "__main__":
    sys.exit(main())
