"""What a drill leaves to read: `timeline.png` and `report.md`."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from loadtest.drills.samples import Sample


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
    for stream in sorted({s.stream for s in samples}, reverse=True):  # steady first
        for pct, style in ((50, "-"), (99, "--")):
            xs = [t for t in seconds if any(s.stream == stream for s in per[t])]
            top.plot(
                xs,
                [np.percentile([s.ms for s in per[t] if s.stream == stream], pct) for t in xs],
                style,
                label=f"{stream} p{pct} ms",
            )
    top.plot(
        seconds,
        [sum(not 200 <= s.status < 400 for s in per[t]) for t in seconds],
        "r.",
        label="not 2xx/3xx per s",
    )
    top.set_yscale("symlog")
    top.legend(loc="upper left")
    bottom.stackplot(
        seconds,
        [[sum(s.tier == tier for s in per[t]) for t in seconds] for tier in tiers],
        labels=[tier or "(none: 503)" for tier in tiers],
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


def write_report(path: Path, name: str, setup: str, result: dict[str, Any]) -> str:
    """The drill's verdict, each target met or missed, its figures and its timeline, as
    Markdown written to `path`; returns the text."""
    lines = [
        f"# Drill {name}",
        "",
        f"**Verdict: {'PASS' if result['passed'] else 'FAIL'}** ({setup})",
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
    text = "\n".join(lines)
    path.write_text(text)
    return text
