"""`python -m loadtest.drills NAME`: one failover drill and its verdict (see the package)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import loadtest.drills
from loadtest.drills.run import DRILLS, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.drills",
        description=loadtest.drills.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", choices=sorted(DRILLS))
    parser.add_argument("--duration", type=float, default=45.0, help="seconds of load")
    parser.add_argument("--concurrency", type=int, default=8, help="steady clients")
    parser.add_argument("--artifacts", type=Path, default=Path("artifacts/default"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    out = args.out or Path("bench-out/drills") / args.name
    return 0 if run(args.name, args.duration, out, args.artifacts, args.concurrency) else 1


if __name__ == "__main__":
    sys.exit(main())
