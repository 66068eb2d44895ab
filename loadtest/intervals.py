"""Latency percentiles per interval of a load run, not since its start.

Locust's `--csv-full-history` percentiles are cumulative: each row covers the whole run so far,
so a spike in the middle of a run only bends them a little and they drift down after it.
The locustfile records every response time into the second it finished in
(`IntervalLatencies.add`) and writes one row per second (`latency.csv`: second from the run's
start, count, p50, p95, p99, max in ms), which the report plots.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SPIKE_WINDOW = (0.4, 0.6)
"""The share of the run a `--shape spike` run spends at its peak user count."""

FIELDS = ("second", "count", "p50", "p95", "p99", "max")


def percentile(ordered: list[float], share: float) -> float:
    """The nearest-rank percentile of sorted values (`share` in 0..1)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Interval:
    second: int
    count: int
    p50: float
    p95: float
    p99: float
    max: float


class IntervalLatencies:
    """Response times (ms) grouped by the whole second, counted from `start`, they ended in."""

    def __init__(self, start: float) -> None:
        self.start = start
        self._times: defaultdict[int, list[float]] = defaultdict(list)

    def add(self, at: float, ms: float) -> None:
        self._times[max(0, int(at - self.start))].append(ms)

    def intervals(self) -> list[Interval]:
        rows = []
        for second in sorted(self._times):
            ordered = sorted(self._times[second])
            rows.append(
                Interval(
                    second,
                    len(ordered),
                    percentile(ordered, 0.50),
                    percentile(ordered, 0.95),
                    percentile(ordered, 0.99),
                    ordered[-1],
                )
            )
        return rows

    def write(self, path: Path) -> None:
        with path.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(FIELDS)
            for row in self.intervals():
                writer.writerow(
                    [
                        row.second,
                        row.count,
                        *(f"{v:.3f}" for v in (row.p50, row.p95, row.p99, row.max)),
                    ]
                )


def read(path: Path) -> list[Interval]:
    with path.open(newline="") as handle:
        return [
            Interval(
                int(r["second"]),
                int(r["count"]),
                float(r["p50"]),
                float(r["p95"]),
                float(r["p99"]),
                float(r["max"]),
            )
            for r in csv.DictReader(handle)
        ]


def peak(rows: list[Interval], *, min_count: int = 1) -> Interval | None:
    """The interval with the highest p99 among those with at least `min_count` responses."""
    counted = [row for row in rows if row.count >= min_count]
    return max(counted, key=lambda row: row.p99, default=None)
