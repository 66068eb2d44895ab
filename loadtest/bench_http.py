"""`python -m loadtest.bench http`: the edge node over loopback, against its own baselines.

In one run and one server configuration it drives, with wrk (bounded by duration):
  * L1 hits of GET /v1/playlists,
  * /_bench/bare: a plain Litestar route of the same app returning the same bytes from a dict,
  * a raw ASGI app on the same server returning the same bytes (the ceiling),
interleaved over several rounds so machine noise hits all alike; then the Server-Timing
total of hits from sequential requests, then uncached throughput (every request a new
prompt, 32 connections) as a ratio to the encoder's own batch throughput measured in the
same run. The CPU the node spends per uncached answer (all its processes and threads) is
printed beside the encoder's CPU per prompt, and the budget the ratio target leaves: on a
machine the misses saturate, those three numbers decide the ratio. `--miss-workers` adds
uncached runs of nodes with more worker processes.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from statistics import median
from urllib.parse import urlencode

import numpy as np
import psutil
from prometheus_client.parser import text_string_to_metric_families

from loadtest.launch import started
from loadtest.net import free_port
from loadtest.prompts import unique_prompts

HIT_QUERY = "/v1/playlists?" + urlencode({"q": "rainy sunday morning jazz", "n": 30})
BARE_QUERY = HIT_QUERY.replace("/v1/playlists", "/_bench/bare")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


def wrk_rounds(
    urls: dict[str, str], *, rounds: int, seconds: float, connections: int
) -> dict[str, list[dict[str, float]]]:
    """wrk over each URL in turn, `rounds` times (interleaved, so machine noise hits all
    alike); every run per URL name."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    width = max(len(name) for name in urls)
    for round_no in range(rounds):
        for name, url in urls.items():
            runs[name].append(wrk(url, seconds=seconds, connections=connections))
            print(
                f"  round {round_no + 1}/{rounds} {name:<{width}} "
                f"{runs[name][-1]['rps']:>9.0f} rps",
                flush=True,
            )
    return runs


def medians(runs: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    """`NAME_rps`, `NAME_p50_ms`, `NAME_p99_ms` and `NAME_non2xx` over each name's runs."""
    results: dict[str, float] = {}
    for name, rs in runs.items():
        results[f"{name}_rps"] = median(r["rps"] for r in rs)
        results[f"{name}_p50_ms"] = median(r["p50"] for r in rs)
        results[f"{name}_p99_ms"] = median(r["p99"] for r in rs)
        results[f"{name}_non2xx"] = sum(r["non2xx"] for r in rs)
    return results


def wrk(
    url: str, *, seconds: float, connections: int, script: Path | None = None
) -> dict[str, float]:
    """Run wrk once; requests/s, p50/p99 latency in ms and the non-2xx count."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    if script is not None:
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 60)
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    latency = {}
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M):
        latency[pct] = float(value) * _UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    total = re.search(r"(\d+) requests in", text)
    return {
        "requests": float(total.group(1)) if total else float("nan"),
        "rps": rps,
        "p50": latency["50"],
        "p99": latency["99"],
        "non2xx": float(bad.group(1)) if bad else 0.0,
    }


def _timing_total(header: str) -> float:
    match = re.search(r"total;dur=([\d.]+)", header)
    return float(match.group(1)) if match else float("nan")


def _tree_cpu(pid: int) -> float:
    """CPU seconds used so far by a process and its children (a server's workers)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:  # a worker that has just exited
            continue
        total += times.user + times.system
    return total


def encoder_rate(artifacts: Path, batch: int = 32, n: int = 512) -> tuple[float, float]:
    """Prompts per second of the artifact's encoder alone, in batches (2 threads), and its
    CPU milliseconds per prompt."""
    from models.encoder import PromptEncoder

    encoder = PromptEncoder(
        artifacts / "encoder.onnx",
        artifacts / "tokenizer.json",
        intra_op_threads=2,
        batch_size=batch,
    )
    prompts = unique_prompts(n, seed=99)
    encoder.encode(prompts[:64])
    start, cpu = time.perf_counter(), time.process_time()
    encoder.encode(prompts)
    return n / (time.perf_counter() - start), (time.process_time() - cpu) / n * 1000


def _miss_script(folder: Path, prompts: list[str], n: int) -> Path:
    paths = ",\n".join('"' + "/v1/playlists?" + urlencode({"q": p, "n": n}) + '"' for p in prompts)
    script = folder / "misses.lua"
    script.write_text(
        "paths = {\n" + paths + "\n}\ncounter = 0\n"
        "request = function()\n  counter = counter + 1\n"
        "  return wrk.format('GET', paths[(counter - 1) % #paths + 1])\nend\n"
    )
    return script


def _node_env(artifacts: Path, data_dir: str, port: int, connections: int) -> dict[str, str]:
    return {
        "EDGE_DATA_DIR": data_dir,  # a fresh global store: every miss really is one
        "EDGE_ARTIFACTS": str(artifacts),
        "EDGE_PORT": str(port),
        "EDGE_BENCH_ROUTES": "true",
        "EDGE_VERIFY_ARTIFACTS": "false",
        "EDGE_COMPUTE_QUEUE": str(max(64, 2 * connections)),
    }


def _uncached(
    port: int, pid: int, folder: Path, *, seconds: float, connections: int
) -> dict[str, float]:
    """wrk with a new prompt per request; rps, latency and the node's CPU ms per 2xx answer
    (the window also holds the few computations still queued when wrk stops: <1 %)."""
    script = _miss_script(folder, unique_prompts(20000, seed=7), 30)
    cpu, semantic = _tree_cpu(pid), _semantic_cpu(port)
    miss = wrk(f"http://127.0.0.1:{port}", seconds=seconds, connections=connections, script=script)
    answers = max(1.0, miss["requests"] - miss["non2xx"])
    miss["cpu_ms"] = (_tree_cpu(pid) - cpu) / answers * 1000
    time.sleep(VERIFY_DRAIN)  # sampled checks run while compute is idle: after the load
    for part, seconds_now in _semantic_cpu(port).items():
        miss[f"semantic_{part}_ms"] = (seconds_now - semantic.get(part, 0.0)) / answers * 1000
    return miss


VERIFY_DRAIN = 2.0
"""Seconds left after an uncached run for the node's queued semantic checks."""


def _semantic_cpu(port: int) -> dict[str, float]:
    """The node's semantic CPU seconds so far, by part (lookup, verify), from /metrics."""
    _status, _headers, body = _get(port, "/metrics")
    seconds: dict[str, float] = {"lookup": 0.0, "verify": 0.0}
    for family in text_string_to_metric_families(body.decode()):
        if family.name == "edge_semantic_cpu_seconds":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    seconds[sample.labels["part"]] = sample.value
    return seconds


def bench_http(
    artifacts: Path,
    *,
    server: str,
    seconds: float,
    rounds: int,
    connections: int,
    miss_seconds: float,
    hits_sampled: int,
    miss_workers: Sequence[int] = (),
) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run `make bench-deps` (apt-get install wrk)")
    port, raw_port = free_port(), free_port()
    tmp_dir = tempfile.TemporaryDirectory()
    env = _node_env(artifacts, tmp_dir.name, port, connections)
    cmd = [sys.executable, "-m", "edge", "--server", server]
    results: dict[str, float] = {}
    with tmp_dir as tmp, started(cmd, env, port, name="edge") as node:
        status, _headers, body = _get(port, HIT_QUERY)
        _get(port, BARE_QUERY)
        assert status == 200
        assert _get(port, HIT_QUERY)[1]["x-cache"] == "HIT-L1"
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        raw_cmd = [sys.executable, "-c", _RAW_SERVE, server, str(raw_port)]
        with started(
            raw_cmd, {"RAW_ASGI_BODY": str(body_file)}, raw_port, name="raw server", path="/"
        ):
            urls = {
                "hit": f"http://127.0.0.1:{port}{HIT_QUERY}",
                "bare": f"http://127.0.0.1:{port}{BARE_QUERY}",
                "raw": f"http://127.0.0.1:{raw_port}/",
            }
            runs = wrk_rounds(urls, rounds=rounds, seconds=seconds, connections=connections)
        results.update(medians(runs))
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        totals = []
        for _ in range(hits_sampled):
            conn.request("GET", HIT_QUERY)
            response = conn.getresponse()
            response.read()
            totals.append(_timing_total(response.getheader("server-timing", "")))
        results["hit_timing_p50_ms"] = float(np.percentile(totals, 50))
        results["hit_timing_p99_ms"] = float(np.percentile(totals, 99))

        print("  encoder batch throughput ...", flush=True)
        results["encoder_rps"], results["encoder_cpu_ms"] = encoder_rate(artifacts)
        print(f"  uncached, {connections} connections, {miss_seconds:g} s ...", flush=True)
        miss = _uncached(port, node.pid, Path(tmp), seconds=miss_seconds, connections=connections)
        results.update({f"miss_{k}": v for k, v in miss.items()})
    cores = len(os.sched_getaffinity(0))  # the cores this process (and its servers) may use
    for workers in miss_workers:
        print(f"  uncached, {workers} workers, {miss_seconds:g} s ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            env = _node_env(artifacts, tmp, port, connections)
            env.update(
                EDGE_WORKERS=str(workers), EDGE_ENCODER_THREADS=str(max(1, cores // workers))
            )
            with started(cmd, env, port, name="edge") as node:
                miss = _uncached(
                    port, node.pid, Path(tmp), seconds=miss_seconds, connections=connections
                )
        results.update({f"miss{workers}w_{k}": v for k, v in miss.items()})
    results["encoder_rps_after"], results["encoder_cpu_ms_after"] = encoder_rate(artifacts)
    results["cores"] = cores
    return results


# Serves loadtest.rawasgi with the same server and loop settings as the edge node.
_RAW_SERVE = """
import sys
from edge.__main__ import run_server
run_server("loadtest.rawasgi:app_from_env", "127.0.0.1", int(sys.argv[2]), 1, sys.argv[1])
"""


def report(server: str, r: dict[str, float]) -> None:
    encoder = (r["encoder_rps"] + r["encoder_rps_after"]) / 2
    print(f"\nserver: {server} (1 worker, uvloop, loopback, wrk -t1)")
    print(
        f"  L1 hit        {r['hit_rps']:>8.0f} rps  p50 {r['hit_p50_ms']:.3f} ms  "
        f"p99 {r['hit_p99_ms']:.3f} ms"
    )
    print(f"  bare route    {r['bare_rps']:>8.0f} rps  p50 {r['bare_p50_ms']:.3f} ms")
    print(f"  raw ASGI      {r['raw_rps']:>8.0f} rps  p50 {r['raw_p50_ms']:.3f} ms")
    print(f"  hit / bare route     {r['hit_rps'] / r['bare_rps']:.2f}   (target >= 0.85)")
    print(f"  hit / raw ASGI       {r['hit_rps'] / r['raw_rps']:.2f}   (aim >= 0.7)")
    print(
        f"  Server-Timing total of hits: p50 {r['hit_timing_p50_ms']:.3f} ms  "
        f"p99 {r['hit_timing_p99_ms']:.3f} ms   (target p99 <= 0.2 ms)"
    )
    encoder_cpu = (r["encoder_cpu_ms"] + r["encoder_cpu_ms_after"]) / 2
    print(
        f"  uncached      {r['miss_rps']:>8.0f} rps  p50 {r['miss_p50']:.1f} ms  "
        f"p99 {r['miss_p99']:.1f} ms  non-2xx {r['miss_non2xx']:.0f}  "
        f"CPU {r['miss_cpu_ms']:.2f} ms/answer"
    )
    if "miss_semantic_lookup_ms" in r:
        lookup, verify = r["miss_semantic_lookup_ms"], r["miss_semantic_verify_ms"]
        print(
            f"  semantic CPU per uncached answer: lookup {lookup:.3f} ms + verification "
            f"{verify:.3f} ms = {lookup + verify:.3f} ms   (target <= 0.1 ms)"
        )
    print(
        f"  encoder alone {encoder:>8.0f} prompts/s (batch 32; before "
        f"{r['encoder_rps']:.0f}, after {r['encoder_rps_after']:.0f})  "
        f"CPU {encoder_cpu:.2f} ms/prompt"
    )
    print(f"  uncached / encoder   {r['miss_rps'] / encoder:.2f}   (target >= 0.7)")
    workers = sorted({int(k[4:].split("w_")[0]) for k in r if k.startswith("miss") and "w_" in k})
    for w in workers:
        print(
            f"  uncached, {w} workers {r[f'miss{w}w_rps']:>5.0f} rps  "
            f"p50 {r[f'miss{w}w_p50']:.1f} ms  p99 {r[f'miss{w}w_p99']:.1f} ms  "
            f"non-2xx {r[f'miss{w}w_non2xx']:.0f}  CPU {r[f'miss{w}w_cpu_ms']:.2f} ms/answer  "
            f"/ encoder {r[f'miss{w}w_rps'] / encoder:.2f}"
        )
    # With the cores saturated, rps = cores / CPU per answer: the target leaves this much.
    budget = r["cores"] / (0.7 * encoder) * 1000
    print(
        f"  CPU budget per uncached answer at the target on {r['cores']:.0f} cores: "
        f"{budget:.2f} ms, of which the encoder takes {encoder_cpu:.2f}"
    )
