"""The drills' contract (`Drill`) and the faults of Redis, the global store, the encoder,
an edge and a whole region."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from redis import Redis

from loadtest.drills.harness import metric, restart_edge
from loadtest.drills.samples import Sample
from loadtest.faultproxy import send_command
from loadtest.redis_server import RedisServer
from loadtest.topology import send_signal

L2_TIMEOUT_MS = 50.0  # the edge's default EDGE_REMOTE_TIMEOUT_MS
COMPUTE_TIMEOUT_MS = 2000.0  # the edge's default EDGE_COMPUTE_TIMEOUT


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
            metric(edge["url"], "edge_write_behind_pending")
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
                metric(edge["url"], "edge_write_behind_dropped_total")
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
        self.figures["restart_ready_s"] = restart_edge(self.edge)

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
            restart_edge(edge)

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
