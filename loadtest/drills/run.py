"""One drill from start to verdict, and every drill by name (`DRILLS`)."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

from loadtest import corpus as corpus_file
from loadtest.drills.faults import (
    Drill,
    EdgeKill,
    EncoderFault,
    EncoderHang,
    GlobalDown,
    RedisBlackhole,
    RedisKill,
    RedisPause,
    RedisSlow,
    RegionFailover,
)
from loadtest.drills.harness import load, topology, watch
from loadtest.drills.overload import Overload
from loadtest.drills.report import timeline, write_report
from loadtest.drills.samples import Sample, write_csv
from loadtest.drills.verdicts import analyse, detection
from loadtest.launch import require_artifacts
from loadtest.topology import named

DRILLS: dict[str, type[Drill]] = {
    cls.name: cls
    for cls in (
        RedisKill,
        RedisPause,
        RedisBlackhole,
        RedisSlow,
        GlobalDown,
        EncoderFault,
        EncoderHang,
        EdgeKill,
        RegionFailover,
        Overload,
    )
}


def run(name: str, duration: float, out: Path, artifacts: Path, concurrency: int) -> bool:
    """Run drill `name` on a topology of its own; writes samples.csv, report.md and
    timeline.png into `out` and tells whether every target was met."""
    require_artifacts(artifacts)
    out.mkdir(parents=True, exist_ok=True)
    drill_class = DRILLS[name]
    state_file = out / "topology" / "state.json"
    if state_file.exists():
        raise SystemExit(f"{state_file} exists: a topology from an earlier run may still be up")
    shutil.rmtree(state_file.parent, ignore_errors=True)  # start from empty stores
    started = topology(
        state_file,
        "up",
        "--regions",
        str(drill_class.regions),
        "--edges-per-region",
        "2",
        "--artifacts",
        str(artifacts),
    )
    if started.returncode != 0:
        raise SystemExit(f"topology did not start: {started.stderr[-2000:]}")
    try:
        state = json.loads(state_file.read_text())
        entries = corpus_file.build(500, seed=11)
        drill = drill_class(state)
        fault = (duration / 3, 2 * duration / 3)

        urls = [edge["url"] for region in state["regions"].values() for edge in region["edges"]]

        async def scenario() -> tuple[list[Sample], list[tuple[float, bool]]]:
            start = time.monotonic()
            steady = asyncio.create_task(
                load(drill.routes(), entries, duration, concurrency, seed=1, start=start)
            )
            watcher = asyncio.create_task(watch(urls, start, duration))
            extra = asyncio.create_task(drill.during(start, fault))
            await asyncio.sleep(fault[0])
            print(f"  {fault[0]:.0f} s: injecting {name}", flush=True)
            await asyncio.to_thread(drill.inject)
            await asyncio.sleep(max(0.0, start + fault[1] - time.monotonic()))
            print(f"  {fault[1]:.0f} s: removing {name}", flush=True)
            await asyncio.to_thread(drill.remove)
            return await steady + await extra, await watcher

        samples, watched = asyncio.run(scenario())
        drill.settle()
        state_file.write_text(json.dumps(state, indent=2))  # restarted processes' PIDs
        processes = list(named(state))
    finally:
        topology(state_file, "down")
    write_csv(samples, out / "samples.csv")
    result = analyse(samples, fault, drill)
    result.update(detection(watched, fault))
    result["passed"] = result.pop("passed")
    timeline(samples, fault, out / "timeline.png")
    setup = (
        f"{duration:g} s, fault from {fault[0]:.0f} s to {fault[1]:.0f} s, {concurrency} "
        f"steady clients; topology: {', '.join(processes)}"
    )
    print(write_report(out / "report.md", name, setup, result))
    return bool(result["passed"])
