"""`python -m loadtest corpus|run`: the request corpus and headless locust runs with a gate.

    python -m loadtest corpus --out bench-out/corpus.jsonl --prompts 2000 --exponent 1.0
    python -m loadtest run --scenario mixed --users 20 --duration 60 --host http://127.0.0.1:8000

`run` writes locust's CSV stats and history, `tiers.csv`, `latency.csv` (p50/p95/p99 of
each second), `report.md`, `latency.png` (those per-second percentiles; a spike's window
shaded) and `tiers.png` into --out, prints the report, and exits 1 when the gate fails
(failure ratio or p99 over budget), so CI or a person can use it as a release gate.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from loadtest import corpus, cost, report
from loadtest.intervals import SPIKE_WINDOW

SCENARIOS = {
    "mixed": "cdn=2,listener=5,picker=2,personal=1,events=1,sdk=1",
    "hits": "cdn=1",
    "listeners": "listener=1",
    "personal": "personal=1",
    "events": "events=1",
    "sdk": "sdk=1",
}


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    corpus_path = out / "corpus.jsonl"
    if args.corpus is not None:
        corpus_path = args.corpus
    elif not corpus_path.exists():
        corpus.write(
            corpus_path, corpus.build(args.prompts, exponent=args.exponent, seed=args.seed)
        )
    env = {
        **os.environ,
        "LOADTEST_CORPUS": str(corpus_path),
        "LOADTEST_WEIGHTS": SCENARIOS[args.scenario],
        "LOADTEST_TIERS_CSV": str(out / "tiers.csv"),
        "LOADTEST_LATENCY_CSV": str(out / "latency.csv"),
        "LOADTEST_SEED": str(args.seed),
        "LOADTEST_SHAPE": args.shape if args.shape != "constant" else "",
        "LOADTEST_USERS": str(args.users),
        "LOADTEST_DURATION": str(args.duration),
    }
    cmd = [
        sys.executable, "-m", "locust",
        "-f", str(Path(__file__).with_name("locustfile.py")),
        "--headless", "--host", args.host,
        "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration:g}s",
        "--csv", str(out / "locust"), "--csv-full-history",
        "--only-summary", "--exit-code-on-error", "0", "--stop-timeout", "5",
    ]  # fmt: skip
    print(f"locust: {args.scenario}, {args.users} users, {args.duration:g} s against {args.host}")
    before = _scrape(args.host)
    locust = subprocess.run(cmd, env=env, timeout=args.duration + 120, check=False)
    after = _scrape(args.host)
    if locust.returncode != 0:
        print(f"locust exited with {locust.returncode}", file=sys.stderr)
        return 2
    gate = report.Gate(max_failure_ratio=args.max_failure_ratio, p99_budget_ms=args.p99_budget_ms)
    summary = report.summarize(out, gate)
    window = None
    if args.shape == "spike":
        window = (SPIKE_WINDOW[0] * args.duration, SPIKE_WINDOW[1] * args.duration)
    report.plot(out, window)
    spent = None
    if before and after and cost.same_process(before, after):
        spent = cost.between(before, after)
    elif before or after:
        print("no cost figures: the two /metrics scrapes came from different processes")
    path = report.write_markdown(
        out, summary, f"Load run: {args.scenario} against {args.host}", spent
    )
    print(path.read_text())
    return 0 if summary.passed else 1


def _scrape(host: str) -> cost.Sample:
    """The target's metrics, or nothing when it has none to give (a balancer, a CDN)."""
    try:
        return cost.scrape(host)
    except (OSError, ValueError):
        return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("corpus", help="write the seeded request corpus")
    make.add_argument("--out", type=Path, default=Path("bench-out/corpus.jsonl"))
    for p in (make,):
        p.add_argument("--prompts", type=int, default=2000)
        p.add_argument("--exponent", type=float, default=1.0, help="Zipf exponent")
        p.add_argument("--seed", type=int, default=0)
    go = commands.add_parser("run", help="a headless locust run, its report and gate")
    go.add_argument("--scenario", choices=sorted(SCENARIOS), default="mixed")
    go.add_argument("--host", required=True)
    go.add_argument("--users", type=int, default=20)
    go.add_argument("--spawn-rate", type=float, default=10.0)
    go.add_argument("--duration", type=float, default=60.0, help="seconds")
    go.add_argument("--shape", choices=("constant", "step", "spike"), default="constant")
    go.add_argument("--out", type=Path, default=Path("bench-out/load"))
    go.add_argument("--corpus", type=Path, help="an existing corpus file")
    go.add_argument("--prompts", type=int, default=2000)
    go.add_argument("--exponent", type=float, default=1.0, help="Zipf exponent")
    go.add_argument("--seed", type=int, default=0)
    go.add_argument("--max-failure-ratio", type=float, default=0.001)
    go.add_argument("--p99-budget-ms", type=float, default=500.0)
    args = parser.parse_args(argv)
    if args.command == "corpus":
        entries = corpus.build(args.prompts, exponent=args.exponent, seed=args.seed)
        corpus.write(args.out, entries)
        print(f"wrote {len(entries)} requests to {args.out}")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
