"""Cost per 1,000 prompts, from an edge's /metrics before and after a run: CPU-seconds of
the edge process, bytes served, and bytes written to each cache tier, at the hit ratio the
run had. The figures are the scraped process's (one edge, one worker)."""

from __future__ import annotations

import urllib.request
from collections import defaultdict
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

Sample = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base_url: str, timeout: float = 5.0) -> Sample:
    """Every sample of the node's /metrics, by (name, labels)."""
    with urllib.request.urlopen(base_url.rstrip("/") + "/metrics", timeout=timeout) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@dataclass(frozen=True)
class Cost:
    prompts: int
    misses: int
    cpu_seconds: float
    served_bytes: float
    written_bytes: dict[str, float]

    @property
    def hit_ratio(self) -> float:
        return 1 - self.misses / self.prompts if self.prompts else 0.0

    def per_thousand(self, value: float) -> float:
        return value * 1000 / self.prompts if self.prompts else 0.0

    def markdown(self) -> list[str]:
        lines = [
            f"Cost per 1,000 prompts at a {self.hit_ratio:.1%} hit ratio "
            f"({self.prompts} prompts, {self.misses} computed):",
            "",
            "| resource | per 1,000 prompts |",
            "|---|---|",
            f"| CPU-seconds (edge process) | {self.per_thousand(self.cpu_seconds):.2f} |",
            f"| bytes served | {self.per_thousand(self.served_bytes):,.0f} |",
        ]
        for tier, written in sorted(self.written_bytes.items()):
            lines.append(f"| bytes written to {tier} | {self.per_thousand(written):,.0f} |")
        return lines


def same_process(before: Sample, after: Sample) -> bool:
    """Whether both scrapes came from one process (not two workers behind one address)."""
    start = ("process_start_time_seconds", ())
    return start in before and before.get(start) == after.get(start)


def between(before: Sample, after: Sample) -> Cost:
    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    def total(name: str, **match: str) -> float:
        return sum(
            value - before.get(key, 0.0)
            for key, value in after.items()
            if key[0] == name and all(dict(key[1]).get(k) == v for k, v in match.items())
        )

    written: dict[str, float] = defaultdict(float)
    for (name, labels), value in after.items():
        if name == "edge_tier_written_bytes_total":
            written[dict(labels)["tier"]] += value - before.get((name, labels), 0.0)
    return Cost(
        prompts=int(total("edge_requests_total", route="/v1/playlists")),
        misses=int(delta("edge_miss_compute_seconds_count")),
        cpu_seconds=delta("process_cpu_seconds_total"),
        served_bytes=delta("edge_served_bytes_total"),
        written_bytes=dict(written),
    )
