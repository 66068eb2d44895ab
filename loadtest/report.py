"""A load run's report: Markdown summary, PNG plots, and the pass/fail gate.

Reads locust's CSV output (`<prefix>_stats.csv`, `<prefix>_stats_history.csv`) and what the
locustfile writes beside it: per-second X-Cache counts (`tiers.csv`) and per-second latency
percentiles (`latency.csv`, see `loadtest.intervals`). The latency plot draws the per-second
percentiles, so a spike shows where it happened; locust's cumulative ones are only the
fallback for a folder without `latency.csv`.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from loadtest import intervals
from loadtest.cost import Cost


@dataclass
class Gate:
    max_failure_ratio: float = 0.001
    p99_budget_ms: float = 500.0


@dataclass
class Summary:
    rows: list[dict[str, str]]
    total: dict[str, str]
    tiers: dict[str, int]
    verdict: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.verdict


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _ms(value: str) -> float:
    """A locust latency cell: a number, or N/A / empty before the first response."""
    try:
        return float(value)
    except ValueError:
        return float("nan")


def summarize(out: Path, gate: Gate) -> Summary:
    stats = _read(out / "locust_stats.csv")
    total = next(r for r in stats if r["Name"] == "Aggregated")
    rows = [r for r in stats if r["Name"] != "Aggregated"]
    tiers: dict[str, int] = defaultdict(int)
    if (out / "tiers.csv").exists():
        for row in _read(out / "tiers.csv"):
            tiers[row["tier"]] += int(row["count"])
    summary = Summary(rows, total, dict(tiers))
    requests, failures = int(total["Request Count"]), int(total["Failure Count"])
    ratio = failures / requests if requests else 1.0
    if requests == 0:
        summary.verdict.append("no requests were made")
    if ratio > gate.max_failure_ratio:
        summary.verdict.append(f"failure ratio {ratio:.4%} > {gate.max_failure_ratio:.4%}")
    p99 = _ms(total["99%"])
    if not p99 <= gate.p99_budget_ms:  # NaN (no latency at all) fails too
        summary.verdict.append(f"p99 {p99:.0f} ms > budget {gate.p99_budget_ms:.0f} ms")
    return summary


def plot(out: Path, window: tuple[float, float] | None = None) -> list[Path]:
    """latency.png and tiers.png; `window` (seconds from the start) is shaded, e.g. a spike."""
    made = []
    fig, left = plt.subplots(figsize=(9, 4.5))
    drawn = False
    if (out / "latency.csv").exists() and (rows := intervals.read(out / "latency.csv")):
        t = [row.second for row in rows]
        for name, style in (("p50", "-"), ("p95", "--"), ("p99", ":")):
            left.plot(t, [getattr(row, name) for row in rows], style, label=name)
        right = left.twinx()
        right.plot(t, [row.count for row in rows], color="grey", alpha=0.5)
        left.set_title("Latency percentiles per second, and throughput")
        drawn = True
    else:
        history = [r for r in _read(out / "locust_stats_history.csv") if r["Name"] == "Aggregated"]
        if history:
            start = int(history[0]["Timestamp"])
            t = [int(r["Timestamp"]) - start for r in history]
            for pct, style in (("50%", "-"), ("95%", "--"), ("99%", ":")):
                left.plot(t, [_ms(r[pct]) for r in history], style, label=f"p{pct[:-1]}")
            right = left.twinx()
            right.plot(t, [float(r["Requests/s"]) for r in history], color="grey", alpha=0.5)
            left.set_title("Latency percentiles since the start (cumulative), and throughput")
            drawn = True
    if drawn:
        if window is not None:
            left.axvspan(*window, color="orange", alpha=0.15, label="spike")
        left.set_xlabel("seconds")
        left.set_ylabel("latency (ms)")
        right.set_ylabel("requests/s (grey)")
        left.legend(loc="upper left")
        fig.tight_layout()
        fig.savefig(out / "latency.png", dpi=110)
        made.append(out / "latency.png")
    plt.close(fig)
    if (out / "tiers.csv").exists():
        per_second: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for row in _read(out / "tiers.csv"):
            per_second[int(row["second"])][row["tier"]] += int(row["count"])
        if per_second:
            seconds = sorted(per_second)
            names = sorted({tier for counts in per_second.values() for tier in counts})
            start = seconds[0]
            fig, ax = plt.subplots(figsize=(9, 4.5))
            ax.stackplot(
                [s - start for s in seconds],
                [[per_second[s].get(name, 0) for s in seconds] for name in names],
                labels=names,
            )
            ax.set_xlabel("seconds")
            ax.set_ylabel("answers per second")
            ax.set_title("Answers by X-Cache")
            ax.legend(loc="upper left", fontsize="small")
            fig.tight_layout()
            fig.savefig(out / "tiers.png", dpi=110)
            plt.close(fig)
            made.append(out / "tiers.png")
    return made


def write_markdown(out: Path, summary: Summary, title: str, spent: Cost | None = None) -> Path:
    total = summary.total
    lines = [
        f"# {title}",
        "",
        f"**Verdict: {'PASS' if summary.passed else 'FAIL'}**"
        + ("" if summary.passed else " — " + "; ".join(summary.verdict)),
        "",
        f"Requests {total['Request Count']}, failures {total['Failure Count']}, "
        f"{float(total['Requests/s']):.1f} requests/s.",
        "",
        "| request | count | failures | rps | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in [*summary.rows, total]:
        lines.append(
            f"| {row['Type']} {row['Name']} | {row['Request Count']} | {row['Failure Count']} "
            f"| {float(row['Requests/s']):.1f} | {row['50%']} | {row['95%']} | {row['99%']} |"
        )
    answered = sum(summary.tiers.values())
    if answered:
        lines += ["", "| X-Cache | answers | share |", "|---|---|---|"]
        for tier, count in sorted(summary.tiers.items(), key=lambda kv: -kv[1]):
            lines.append(f"| {tier} | {count} | {count / answered:.1%} |")
    if (out / "latency.csv").exists():
        top = intervals.peak(intervals.read(out / "latency.csv"))
        if top is not None:
            lines += [
                "",
                f"Highest p99 of any second: {top.p99:.1f} ms, {top.second} s into the run "
                f"({top.count} responses that second; p50 {top.p50:.1f} ms).",
            ]
    if spent is not None and spent.prompts:
        lines += ["", *spent.markdown()]
    lines += ["", "![latency](latency.png)", "", "![tiers](tiers.png)", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
