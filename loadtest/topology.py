"""A local multi-region topology on loopback ports, for load tests and failover drills.

    python -m loadtest.topology up --regions 2 --edges-per-region 2
    python -m loadtest.topology status
    python -m loadtest.topology pause r1.redis      # SIGSTOP; `resume` sends SIGCONT
    python -m loadtest.topology kill r1.edge2       # SIGKILL
    python -m loadtest.topology down

`up` starts the global store (a `redis-server`) and, per region, one `redis-server` (the
region's L2) and the edge processes. Each Redis has a fault proxy in front of it: edges reach
Redis only through it, so drills can slow, cut or reset that link. `up` waits for every
edge's /readyz, prints the endpoints and writes them, with every PID, to a state file.
Edges run with fault injection on (a drill can make their encoder fail through the admin
API, whose key is in the state file). `pause`, `resume` and `kill` signal one process (and
its process group) by the name `status` shows: `global.redis`, `r1.redis`, `r1.proxy`,
`r1.edge1`, ... `down` stops exactly the processes in that file (checking each PID still
runs what was started) and nothing else.
The same layout for machines with Docker is in docker-compose.yml.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from loadtest.launch import check_running, require_artifacts, spawn
from loadtest.net import free_port, is_ready
from loadtest.redis_server import RedisServer

DEFAULT_STATE = Path("bench-out/topology/state.json")


def up(
    regions: int, edges: int, artifacts: Path, state_file: Path, timeout: float
) -> dict[str, Any]:
    require_artifacts(artifacts)  # before any process starts: a wrong path fails at once
    run = state_file.parent
    run.mkdir(parents=True, exist_ok=True)
    # Drills reach the edges' admin API (purges, injected encoder faults) with this key.
    state: dict[str, Any] = {
        "run_dir": str(run),
        "admin_key": secrets.token_hex(16),
        "user_hash_key": secrets.token_hex(16),
        "regions": {},
    }

    # The state file is written as processes start, so `down` can stop a half-made topology.
    def save() -> None:
        state_file.write_text(json.dumps(state, indent=2))

    procs: dict[str, subprocess.Popen[bytes]] = {}  # edge name -> its process, while starting
    state["global"] = {}
    _redis_behind_proxy(run / "global", state["global"], save, durable=True)
    for r in range(1, regions + 1):
        name = f"r{r}"
        region: dict[str, Any] = {"edges": []}
        state["regions"][name] = region
        _redis_behind_proxy(run / name, region, save)
        for e in range(1, edges + 1):
            port = free_port()
            env = {
                "EDGE_ARTIFACTS": str(artifacts),
                "EDGE_HOST": "127.0.0.1",
                "EDGE_PORT": str(port),
                "EDGE_REGION": name,
                "EDGE_L2_URL": region["url"],
                "EDGE_GLOBAL_URL": state["global"]["url"],
                "EDGE_DATA_DIR": str(run / name / f"edge{e}"),
                "EDGE_ADMIN_KEY": state["admin_key"],
                # Every edge hashes user tokens alike; one archiver per region, on edge 1.
                "EDGE_USER_HASH_KEY": state["user_hash_key"],
                "EDGE_ARCHIVE_DIR": str(run / name / "archive") if e == 1 else "none",
                "EDGE_FAULT_INJECTION": "true",
                # Edges share this machine: each encoder gets its share of the cores, so a
                # busy one cannot starve the others (or the load generator) of all of them.
                "EDGE_ENCODER_THREADS": str(max(1, (os.cpu_count() or 1) // (regions * edges))),
            }
            log = run / name / f"edge{e}.log"
            proc = spawn([sys.executable, "-m", "edge"], env, log)
            procs[f"{name}.edge{e}"] = proc
            url = f"http://127.0.0.1:{port}"
            region["edges"].append(
                {
                    "pid": proc.pid,
                    "port": port,
                    "url": url,
                    "cmd": "-m edge",
                    "env": env,
                    "log": str(log),
                }
            )
            save()
    starting = {name: part for name, part in named(state).items() if name in procs}
    pending = list(starting)
    deadline = time.monotonic() + timeout
    last_report = 0.0
    while pending:
        pending = [name for name in pending if not is_ready(starting[name]["port"])]
        if not pending:
            break
        for name in pending:  # an edge that exited will never be ready: say why now
            check_running(procs[name], name, Path(starting[name]["log"]))
        if time.monotonic() > deadline:
            raise SystemExit(
                f"edges not ready after {timeout:.0f} s: {', '.join(pending)}; see {run}/*/"
            )
        if time.monotonic() - last_report > 5:
            print(f"  waiting for {len(pending)} edge(s) to be ready ...", flush=True)
            last_report = time.monotonic()
        time.sleep(0.25)
    return state


def _redis_behind_proxy(
    workdir: Path, part: dict[str, Any], save: Callable[[], None], *, durable: bool = False
) -> None:
    """A detached redis-server and a fault proxy in front of it, recorded in `part`."""
    redis = RedisServer(workdir / "redis", detach=True, durable=durable).start()
    assert redis.proc is not None
    part["redis"] = {
        "pid": redis.proc.pid,
        "port": redis.port,
        "cmd": "redis-server",
        "durable": durable,
        "dir": str(workdir / "redis"),
    }
    save()
    proxy_port, control_port = free_port(), free_port()
    proxy_cmd = [sys.executable, "-m", "loadtest.faultproxy", "--listen", str(proxy_port)]
    proxy_cmd += ["--target", f"127.0.0.1:{redis.port}", "--control", str(control_port)]
    part["proxy"] = {
        "pid": spawn(proxy_cmd, {}, workdir / "proxy.log").pid,
        "port": proxy_port,
        "control": control_port,
        "cmd": "loadtest.faultproxy",
    }
    part["url"] = f"redis://127.0.0.1:{proxy_port}/0"
    save()


def _alive(pid: int, marker: str) -> bool:
    """Is `pid` running and still the process we started (not a reused PID)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmdline


def down(state_file: Path, grace: float = 10.0) -> int:
    """Stop every process the state file names; how many were still running."""
    if not state_file.exists():
        print(f"{state_file}: no topology recorded")
        return 0
    state = json.loads(state_file.read_text())
    running = [p for p in named(state).values() if _alive(p["pid"], p["cmd"])]
    for proc in running:
        os.kill(proc["pid"], signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(p["pid"], p["cmd"]) for p in running):
        time.sleep(0.1)
    for proc in running:
        if _alive(proc["pid"], proc["cmd"]):
            os.kill(proc["pid"], signal.SIGKILL)
    state_file.unlink()
    return len(running)


def named(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every process of the topology by name: global.redis, r1.proxy, r1.edge2, ..."""
    parts = {"global": state.get("global", {}), **state["regions"]}
    found = {}
    for prefix, part in parts.items():
        for role in ("redis", "proxy"):
            if role in part:
                found[f"{prefix}.{role}"] = part[role]
        for number, edge in enumerate(part.get("edges", ()), 1):
            found[f"{prefix}.edge{number}"] = edge
    return found


SIGNALS = {"pause": signal.SIGSTOP, "resume": signal.SIGCONT, "kill": signal.SIGKILL}


def send_signal(state: dict[str, Any], name: str, action: str) -> None:
    """`pause`, `resume` or `kill` the process called `name`, with its process group (an
    edge's server workers stop with it, as in a frozen or crashed machine)."""
    processes = named(state)
    if name not in processes:
        raise SystemExit(f"no process {name!r}; the topology has {', '.join(processes)}")
    proc = processes[name]
    if not _alive(proc["pid"], proc["cmd"]):
        raise SystemExit(f"{name} (pid {proc['pid']}) is not running")
    os.killpg(proc["pid"], SIGNALS[action])


def status(state_file: Path) -> None:
    if not state_file.exists():
        print(f"{state_file}: no topology recorded")
        return
    state = json.loads(state_file.read_text())
    for name, proc in named(state).items():
        line = f"{name:<14} pid {proc['pid']:<8} {_word(proc):<8}"
        if "url" in proc:
            line += f" {proc['url']} ({'ready' if is_ready(proc['port']) else 'not ready'})"
        elif "control" in proc:
            line += f" :{proc['port']} (control :{proc['control']})"
        else:
            line += f" :{proc['port']}"
        print(line)


def _word(proc: dict[str, Any]) -> str:
    return "running" if _alive(proc["pid"], proc["cmd"]) else "stopped"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.topology",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--state", type=Path, default=DEFAULT_STATE, help="state file")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="start regions and edges, wait until ready")
    start.add_argument("--regions", type=int, default=2)
    start.add_argument("--edges-per-region", type=int, default=2)
    start.add_argument("--artifacts", type=Path, default=Path("artifacts/default"))
    start.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for ready")
    commands.add_parser("down", help="stop what `up` started")
    commands.add_parser("status", help="what is running")
    for action, sig in SIGNALS.items():
        signalled = commands.add_parser(action, help=f"send {sig.name} to one process")
        signalled.add_argument("target", help="global.redis, r1.redis, r1.proxy, r1.edge1, ...")
    args = parser.parse_args(argv)
    if args.command == "up":
        if args.state.exists():
            raise SystemExit(f"{args.state} exists: run `down` first (or pass another --state)")
        try:
            state = up(
                args.regions, args.edges_per_region, args.artifacts, args.state, args.timeout
            )
        except BaseException:
            down(args.state)  # never leave half a topology running
            raise
        print(json.dumps(state, indent=2))
    elif args.command == "down":
        print(f"stopped {down(args.state)} processes")
    elif args.command in SIGNALS:
        if not args.state.exists():
            raise SystemExit(f"{args.state}: no topology recorded")
        send_signal(json.loads(args.state.read_text()), args.target, args.command)
    else:
        status(args.state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
