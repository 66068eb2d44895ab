"""Benchmarks that print ratios measured side by side in one run.

    python -m loadtest.bench models [--sizes 100000,1000000] [--queries 300] [--root DIR]
    python -m loadtest.bench http [--artifacts DIR] [--server granian,uvicorn] [--seconds 5]
    python -m loadtest.bench http --cdn varnish [--shield-seconds 20] [--cdn-ttl 6]
    python -m loadtest.bench encoder [--artifacts DIR[,DIR]] [--threads 1,2]
    python -m loadtest.bench quality --artifacts DIR --playlists MPD... [--split test] [-n 30]
    python -m loadtest.bench loop [--catalog synthetic:3000] [--prompts 12] [--listeners 6]

`models` builds an artifact per catalog size in a child process (build time, peak RSS),
then loads it in another child (load time, peak RSS) that times the encoder, the ANN search
and the whole miss path on the same prompts, and reports the miss path as a ratio to
encoder + ANN, so machine noise cancels out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from loadtest.prompts import sample_prompts


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def probe(artifact_dir: Path, n_queries: int, seed: int) -> dict[str, float]:
    """Load an artifact folder and time its stages; runs inside a child process."""
    from models import artifacts

    start = time.perf_counter()
    loaded = artifacts.load(artifact_dir)
    load_s = time.perf_counter() - start
    generator = loaded.generator()
    prompts = sample_prompts(n_queries, seed=seed)
    k = generator.params.candidates
    for prompt in prompts[:20]:  # warm caches and onnxruntime's first-run allocations
        generator.generate(loaded.parser.parse(prompt))

    # What the artifact learned from playlists costs on top: the title index's search is
    # counted as ANN (the miss makes it), and the same prompts are also answered without
    # the learned parts, interleaved.
    titles = loaded.titles
    content = dataclasses.replace(loaded, titles=None, cooccur=None).generator()

    # Interleaved per prompt, so load from elsewhere on the machine hits all alike.
    # The parse is timed apart: it is part of the miss, not of the encoder.
    parse_ms, encode_ms, ann_ms, miss_ms, content_ms = [], [], [], [], []
    for prompt in prompts:
        tp = time.perf_counter()
        query_text = loaded.parser.parse(prompt).query_text
        t0 = time.perf_counter()
        vector = loaded.encoder.encode([query_text])[0]
        t1 = time.perf_counter()
        loaded.index.search(loaded.index.project(vector), k)
        if titles is not None:
            titles.index.knn_query(vector[None, :], min(titles.settings.neighbours, len(titles)))
        t2 = time.perf_counter()
        generator.generate(loaded.parser.parse(prompt))
        t3 = time.perf_counter()
        if titles is not None:
            content.generate(loaded.parser.parse(prompt))
            content_ms.append((time.perf_counter() - t3) * 1000)
        parse_ms.append((t0 - tp) * 1000)
        encode_ms.append((t1 - t0) * 1000)
        ann_ms.append((t2 - t1) * 1000)
        miss_ms.append((t3 - t2) * 1000)
    learned: dict[str, float] = {}
    if titles is not None:
        held = [titles.indptr, titles.rows, titles.weights, titles.track_playlists]
        index_bytes = (loaded.path / "titles.hnsw").stat().st_size
        cooccur = loaded.cooccur.nbytes if loaded.cooccur is not None else 0
        learned = {
            "titles": len(titles),
            "learned_mb": (sum(a.nbytes for a in held) + index_bytes + cooccur) / 2**20,
            "content_miss_p50": _pct(content_ms, 50),
        }
    return {
        **learned,
        "tracks": len(loaded.catalog),
        "load_s": load_s,
        "parse_p50": _pct(parse_ms, 50),
        "encode_p50": _pct(encode_ms, 50),
        "encode_p99": _pct(encode_ms, 99),
        "ann_p50": _pct(ann_ms, 50),
        "ann_p99": _pct(ann_ms, 99),
        "miss_p50": _pct(miss_ms, 50),
        "miss_p99": _pct(miss_ms, 99),
        "ann_k": k,
        "ef_search": loaded.manifest.index.ef_search,
        "recall": loaded.manifest.recall[str(loaded.manifest.index.ef_search)],
        "recall_k": loaded.manifest.index.recall_k,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _child_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def bench_models(
    sizes: list[int], n_queries: int, root: Path, rebuild: bool, given: Sequence[Path] = ()
) -> list[dict[str, Any]]:
    """Build (or reuse) one artifact per size, then probe each (and each `given` folder)
    in a fresh process."""
    rows = []
    folders = list(given)
    sizes = [*sizes, *[0] * len(folders)]
    for size in sizes:
        out = root / f"synthetic-{size}" if size else folders.pop(0)
        build_s = build_rss = float("nan")
        if size and (rebuild or not (out / "manifest.json").exists()):
            print(f"== building synthetic:{size} into {out}", flush=True)
            start = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "models",
                    "build",
                    "--catalog",
                    f"synthetic:{size}",
                    "--out",
                    str(out),
                ],
                check=True,
            )
            build_s = time.perf_counter() - start
            build_rss = _child_rss_mb()  # max over children so far: builds grow with size
        print(f"== probing {out} with {n_queries} prompts", flush=True)
        result = subprocess.run(
            [sys.executable, "-m", "loadtest.bench", "_probe", str(out), str(n_queries)],
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(result.stdout)
        row.update(build_s=build_s, build_rss_mb=build_rss)
        rows.append(row)
        _print_row(row)
    return rows


def _print_row(r: dict[str, Any]) -> None:
    ratio = r["miss_p50"] / (r["encode_p50"] + r["ann_p50"])
    if "titles" in r:
        print(
            f"learned: {r['titles']} titles; the learned parts hold {r['learned_mb']:.0f} MB; "
            f"content-only miss p50 {r['content_miss_p50']:.2f} ms "
            f"(ANN below includes the title index's search)"
        )
    build = (
        "build reused (--rebuild to time it)"
        if np.isnan(r["build_s"])
        else f"build {r['build_s']:.0f} s, build peak RSS {r['build_rss_mb']:.0f} MB"
    )
    print(
        f"tracks={r['tracks']:>8}  encoder batch-1 p50 {r['encode_p50']:.2f} ms p99 "
        f"{r['encode_p99']:.2f} ms (parse apart: p50 {r['parse_p50']:.2f} ms) | "
        f"ANN(k={r['ann_k']}, ef={r['ef_search']}) p50 "
        f"{r['ann_p50']:.2f} ms p99 {r['ann_p99']:.2f} ms | miss p50 {r['miss_p50']:.2f} ms "
        f"p99 {r['miss_p99']:.2f} ms | miss/(enc+ANN) = {ratio:.2f} (target ≤ 1.3)\n"
        f"                recall@{r['recall_k']} {r['recall']:.3f} | {build} | load "
        f"{r['load_s']:.2f} s, serving peak "
        f"RSS {r['rss_mb']:.0f} MB",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    models = commands.add_parser("models", help="encoder, ANN and miss-path latency; build cost")
    models.add_argument(
        "--sizes", default="100000,1000000", help="comma-separated synthetic catalog sizes"
    )
    models.add_argument("--queries", type=int, default=300)
    models.add_argument("--root", default="bench-out/artifacts", help="where artifacts go")
    models.add_argument("--rebuild", action="store_true", help="rebuild existing artifacts")
    models.add_argument(
        "--artifacts", default="", help="built artifact folders to probe too (comma-separated)"
    )
    web = commands.add_parser("http", help="edge node hits and misses against bare baselines")
    web.add_argument("--artifacts", default="artifacts/default")
    web.add_argument("--server", default="granian", help="granian, uvicorn, or both (comma)")
    web.add_argument("--seconds", type=float, default=5.0, help="length of each hit run")
    web.add_argument("--rounds", type=int, default=3, help="interleaved hit/bare/raw rounds")
    web.add_argument("--connections", type=int, default=32)
    web.add_argument("--miss-seconds", type=float, default=15.0)
    web.add_argument("--hits-sampled", type=int, default=3000)
    web.add_argument(
        "--miss-workers", default="", help="also run uncached on nodes of these worker counts"
    )
    web.add_argument(
        "--cdn", choices=["varnish"], help="the node behind this cache: hits, shield ratio"
    )
    web.add_argument("--shield-seconds", type=float, default=20.0, help="--cdn: Zipf run")
    web.add_argument("--cdn-ttl", type=float, default=6.0, help="--cdn: the node's EDGE_TTL")
    enc = commands.add_parser("encoder", help="encoder throughput and CPU by batch and threads")
    enc.add_argument("--artifacts", default="artifacts/default", help="folders (comma)")
    enc.add_argument("--prompts", type=int, default=512)
    enc.add_argument("--rounds", type=int, default=3)
    enc.add_argument("--threads", default="1,2", help="intra-op thread counts (comma)")
    sem = commands.add_parser(
        "semantic", help="semantic hits judged by answer overlap; thresholds with a bound"
    )
    sem.add_argument("--artifacts", default="artifacts/default")
    sem.add_argument(
        "--playlists", nargs="*", default=[], help="MPD slices: pairs of train-split titles"
    )
    sem.add_argument("--out", default="bench-out/semantic")
    sem.add_argument("--target", type=float, default=0.01, help="highest incorrect-hit rate")
    sem.add_argument("--confidence", type=float, default=0.95)
    tiers = commands.add_parser("tiers", help="L2 and global-store hits; tier mix on a Zipf load")
    tiers.add_argument("--artifacts", default="artifacts/default")
    tiers.add_argument("--samples", type=int, default=5000, help="reads per tier")
    tiers.add_argument("--requests", type=int, default=3000)
    tiers.add_argument("--prompts", type=int, default=1000, help="distinct intents")
    tiers.add_argument("--edges", type=int, default=2, help="edges sharing L2, round-robin")
    events = commands.add_parser("events", help="event ingest throughput; accept-to-session lag")
    events.add_argument("--artifacts", default="artifacts/default")
    events.add_argument("--seconds", type=float, default=8.0, help="length of each rate run")
    events.add_argument("--clients", type=int, default=8)
    events.add_argument("--samples", type=int, default=500, help="events timed for lag")
    quality = commands.add_parser("quality", help="relevance on listener playlist titles")
    source = quality.add_mutually_exclusive_group(required=True)
    source.add_argument("--artifacts", help="a built artifact folder")
    source.add_argument("--catalog", help="a catalog to build artifacts from (into OUT)")
    quality.add_argument(
        "--playlists", nargs="+", required=True, help="MPD slices, a folder of them, or JSONL"
    )
    quality.add_argument("--split", choices=["test", "validation"], default="test")
    quality.add_argument("-n", type=int, default=30, help="the table's playlist length")
    quality.add_argument("--sample", type=int, default=1000, help="playlists of the split")
    quality.add_argument("--seed", type=int, default=0, help="sample shuffle and random method")
    quality.add_argument("--out", default="bench-out/quality")
    quality.add_argument("--url", help="ask a running node over HTTP instead of in process")
    quality.add_argument(
        "--learn",
        action="store_true",
        help="with --catalog: the built artifacts learn from the playlists outside the split",
    )
    loop = commands.add_parser("loop", help="listeners' events -> retrain -> rollout: recall")
    loop.add_argument("--catalog", default="synthetic:3000")
    loop.add_argument("--prompts", type=int, default=12)
    loop.add_argument("--listeners", type=int, default=6, help="listeners per prompt")
    loop.add_argument("-n", type=int, default=30, help="recall@n")
    loop.add_argument("--seed", type=int, default=0)
    loop.add_argument("--root", default="bench-out/loop")
    hidden = commands.add_parser("_probe")
    hidden.add_argument("artifacts")
    hidden.add_argument("queries", type=int)
    args = parser.parse_args(argv)
    if args.command == "_probe":
        print(json.dumps(probe(Path(args.artifacts), args.queries, seed=1)))
        return 0
    if args.command == "quality":
        from loadtest.quality import report, run
        from models.errors import ModelError

        try:
            results = run.run(
                artifacts_dir=Path(args.artifacts) if args.artifacts else None,
                catalog=args.catalog,
                playlists=args.playlists,
                split=args.split,
                n=args.n,
                size=args.sample,
                seed=args.seed,
                out=Path(args.out),
                url=args.url,
                learn=args.learn,
            )
        except (ModelError, ValueError) as exc:
            print(f"quality: {exc}", file=sys.stderr)
            return 2
        report.report(results, Path(args.out))
        return 0
    if args.command == "loop":
        from loadtest import bench_loop
        from models.errors import ModelError

        try:
            loop_figures = bench_loop.run(
                args.catalog,
                prompts=args.prompts,
                listeners=args.listeners,
                n=args.n,
                seed=args.seed,
                root=Path(args.root),
            )
        except (ModelError, RuntimeError, ValueError, httpx.HTTPError) as exc:
            print(f"loop: {exc}", file=sys.stderr)
            return 2
        bench_loop.report(loop_figures)
        return 0
    if args.command == "tiers":
        from loadtest import bench_tiers
        from models.artifacts import load

        bench_tiers.run(
            load(Path(args.artifacts)),
            samples=args.samples,
            requests=args.requests,
            prompts=args.prompts,
            edges=args.edges,
        )
        return 0
    if args.command == "encoder":
        from loadtest import bench_encoder

        bench_encoder.run(
            [Path(a) for a in args.artifacts.split(",")],
            prompts=args.prompts,
            rounds=args.rounds,
            threads=[int(t) for t in args.threads.split(",")],
        )
        return 0
    if args.command == "events":
        from loadtest import bench_events

        try:
            bench_events.run(Path(args.artifacts), args.seconds, args.clients, args.samples)
        except RuntimeError as exc:  # the edge never became ready
            print(f"events: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "semantic":
        from loadtest import semantic
        from models.artifacts import load
        from models.errors import ModelError

        try:
            loaded = load(Path(args.artifacts))
            results = semantic.run(
                loaded, args.playlists, Path(args.out), args.target, args.confidence
            )
        except (ModelError, OSError) as exc:
            print(f"semantic: {exc}", file=sys.stderr)
            return 2
        semantic.report(results)
        return 0
    if args.command == "http" and args.cdn:
        from loadtest import bench_cdn

        for server in args.server.split(","):
            cdn = bench_cdn.bench_cdn(
                Path(args.artifacts),
                server=server,
                seconds=args.seconds,
                rounds=args.rounds,
                connections=args.connections,
                shield_seconds=args.shield_seconds,
                ttl=args.cdn_ttl,
            )
            bench_cdn.report(server, cdn)
        return 0
    if args.command == "http":
        from loadtest import bench_http

        for server in args.server.split(","):
            result = bench_http.bench_http(
                Path(args.artifacts),
                server=server,
                seconds=args.seconds,
                rounds=args.rounds,
                connections=args.connections,
                miss_seconds=args.miss_seconds,
                hits_sampled=args.hits_sampled,
                miss_workers=[int(w) for w in args.miss_workers.split(",") if w],
            )
            bench_http.report(server, result)
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s]
    given = [Path(a) for a in args.artifacts.split(",") if a]
    bench_models(sizes, args.queries, Path(args.root), args.rebuild, given)
    return 0


if __name__ == "__main__":
    sys.exit(main())
