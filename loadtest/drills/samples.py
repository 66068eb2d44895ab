"""One request as a drill saw it, and the drill's `samples.csv`."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


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


def write_csv(samples: list[Sample], path: Path) -> None:
    """One row per request, in the order they were sent."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["t", "ms", "status", "tier", "edge", "stream", "path"])
        writer.writerows(
            (f"{s.t:.3f}", f"{s.ms:.2f}", s.status, s.tier, s.edge, s.stream, s.path)
            for s in sorted(samples, key=lambda s: s.t)
        )
