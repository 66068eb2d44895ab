"""`python -m loadtest.bench http --cdn varnish`: the node behind Varnish, in one run.

With wrk (bounded by duration), interleaved over several rounds so machine noise hits all
alike:
  * hits of one canonical URL through Varnish (deploy/varnish/default.vcl) and straight
    at the node;
  * the canonical-URL check's cost on the node's hit path: the same hits at a second node
    with canonical redirects off, and the node's 308 for a non-canonical spelling (what a
    client that follows it pays once more);
then, once every prompt of it has been asked, a Zipf workload of canonical URLs through
Varnish with short lifetimes (s-maxage of a few seconds, so the run spans several),
counting the requests that reach the node per 1,000 client requests (the shield ratio) and
Varnish's hit-for-miss objects.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import urllib.request
from pathlib import Path
from urllib.parse import quote

from edge.query import canonical_query
from loadtest.bench_http import medians, wrk, wrk_rounds
from loadtest.cdn_servers import VarnishServer, installed
from loadtest.launch import started
from loadtest.net import free_port
from loadtest.prompts import zipf_workload

HIT = "/v1/playlists?" + canonical_query(b"q=rainy+sunday+morning+jazz", default_length=30).decode()
MOVED = "/v1/playlists?q=Rainy+Sunday+Morning+Jazz&n=30"


def _node_env(artifacts: Path, data: str, port: int, **extra: str) -> dict[str, str]:
    return {
        "EDGE_ARTIFACTS": str(artifacts),
        "EDGE_DATA_DIR": data,
        "EDGE_PORT": str(port),
        "EDGE_VERIFY_ARTIFACTS": "false",
        "EDGE_COMPUTE_QUEUE": "256",
        **extra,
    }


def _fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def _node_requests(port: int) -> float:
    """GET /v1/playlists answers the node has counted (every status)."""
    text = _fetch(f"http://127.0.0.1:{port}/metrics").decode()
    pattern = r'^edge_requests_total\{route="/v1/playlists",status="\d+"\} ([\d.e+]+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.M))


def _zipf_paths(requests: int, prompts: int) -> list[str]:
    raw = [f"q={quote(p)}".encode() for p in zipf_workload(requests, prompts, seed=11)]
    return ["/v1/playlists?" + canonical_query(r, default_length=30).decode() for r in raw]


def _zipf_script(folder: Path, paths: list[str]) -> Path:
    script = folder / "zipf.lua"
    script.write_text(
        "paths = {\n" + ",\n".join(f'"{p}"' for p in paths) + "\n}\ncounter = 0\n"
        "request = function()\n  counter = counter + 1\n"
        "  return wrk.format('GET', paths[(counter - 1) % #paths + 1])\nend\n"
    )
    return script


def bench_cdn(
    artifacts: Path,
    *,
    server: str,
    seconds: float,
    rounds: int,
    connections: int,
    shield_seconds: float,
    ttl: float,
) -> dict[str, float]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: run `make bench-deps` (apt-get install wrk)")
    if not installed("varnishd"):
        raise SystemExit("varnishd is not installed: run `make cdn-servers`")
    cmd = [sys.executable, "-m", "edge", "--server", server]
    port, plain_port = free_port(), free_port()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        lifetimes = {"EDGE_TTL": str(ttl), "EDGE_TTL_JITTER": "0", "EDGE_GLOBAL_URL": "none"}
        env = _node_env(artifacts, f"{tmp}/a", port, EDGE_CANONICAL_REDIRECT="true", **lifetimes)
        plain = _node_env(artifacts, f"{tmp}/b", plain_port, EDGE_CANONICAL_REDIRECT="false")
        with (
            started(cmd, env, port, name="edge"),
            started(cmd, plain, plain_port, name="plain edge"),
        ):
            varnish = VarnishServer(Path(tmp) / "varnish", [port], storage="malloc,256m").start()
            try:
                urls = {
                    "varnish": varnish.url + HIT,
                    "node": f"http://127.0.0.1:{port}{HIT}",
                    "plain": f"http://127.0.0.1:{plain_port}{HIT}",
                    "redirect": f"http://127.0.0.1:{port}{MOVED}",
                }
                for url in urls.values():
                    _fetch(url.replace(MOVED, HIT))
                runs = wrk_rounds(urls, rounds=rounds, seconds=seconds, connections=connections)
                results.update(medians(runs))
                print(f"  Zipf workload through Varnish, {shield_seconds:g} s ...", flush=True)
                paths = _zipf_paths(20_000, 300)
                for path in dict.fromkeys(paths):  # steady state: every prompt computed once
                    _fetch(varnish.url + path)
                script = _zipf_script(Path(tmp), paths)
                before, stats = _node_requests(port), varnish.stats()
                zipf = wrk(
                    varnish.url, seconds=shield_seconds, connections=connections, script=script
                )
                after, stats_after = _node_requests(port), varnish.stats()
            finally:
                varnish.stop()
    results["shield_client_requests"] = zipf["requests"]
    results["shield_node_requests"] = after - before
    results["shield_per_1000"] = (after - before) / zipf["requests"] * 1000
    results["shield_rps"] = zipf["rps"]
    results["shield_p99_ms"] = zipf["p99"]
    results["shield_non2xx"] = zipf["non2xx"]
    results["hitmiss"] = stats_after["MAIN.cache_hitmiss"] - stats["MAIN.cache_hitmiss"]
    results["ttl"] = ttl
    results["shield_seconds"] = shield_seconds
    return results


def report(server: str, r: dict[str, float]) -> None:
    print(f"\nserver: {server} (1 worker) behind varnishd (deploy/varnish), loopback, wrk -t1")
    for name, label in (
        ("varnish", "hit via Varnish"),
        ("node", "hit at the node"),
        ("plain", "hit, no redirects"),
        ("redirect", "308 at the node"),
    ):
        print(
            f"  {label:<18} {r[f'{name}_rps']:>8.0f} rps  p50 {r[f'{name}_p50_ms']:.3f} ms  "
            f"p99 {r[f'{name}_p99_ms']:.3f} ms"
        )
    print(f"  Varnish / node hits    {r['varnish_rps'] / r['node_rps']:.2f}")
    print(f"  canonical check / none {r['node_rps'] / r['plain_rps']:.2f} (hit rps)")
    shared = int(r["ttl"] / 2)
    print(
        f"  shield: {r['shield_node_requests']:.0f} node requests for "
        f"{r['shield_client_requests']:.0f} client requests = {r['shield_per_1000']:.2f} per "
        f"1,000 (Zipf over 300 prompts, s-maxage {shared} s, {r['shield_seconds']:g} s; "
        f"{r['shield_rps']:.0f} rps, p99 {r['shield_p99_ms']:.2f} ms, "
        f"non-2xx {r['shield_non2xx']:.0f}, hit-for-miss {r['hitmiss']:.0f})"
    )
