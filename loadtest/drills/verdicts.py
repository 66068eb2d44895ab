"""The targets every drill is held to, and its time to detect and to recover."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from loadtest.drills.faults import Drill
from loadtest.drills.samples import Sample


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
