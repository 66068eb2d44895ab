"""`python -m loadtest run` against a real edge process: report, plots, and the gate."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest import corpus, intervals
from loadtest.net import free_port, wait_ready


@pytest.fixture(scope="module")
def edge_url(artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "EDGE_ARTIFACTS": str(artifact_dir),
        "EDGE_PORT": str(port),
        "EDGE_DATA_DIR": str(tmp_path_factory.mktemp("edge-data")),
        "EDGE_VERIFY_ARTIFACTS": "false",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_ready(port, timeout=60), "edge not ready"
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def _run(url: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "loadtest", "run", "--host", url, "--out", str(out)]
    # 12 users: enough for every class at weights 2/5/2/1/1/1 to get at least one.
    cmd += ["--users", "12", "--spawn-rate", "10", "--duration", "4", "--prompts", "200", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def test_a_mixed_run_passes_and_reports(edge_url: str, tmp_path: Path) -> None:
    done = _run(edge_url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("report.md", "latency.png", "tiers.png", "locust_stats.csv", "tiers.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    text = (tmp_path / "report.md").read_text()
    assert "**Verdict: PASS**" in text
    for request in (
        "GET cdn",
        "GET text",
        "GET slots",
        "POST personal",
        "POST events",
        "SDK playlist",
    ):
        assert request in text
    assert "HIT-L1" in text
    assert "Cost per 1,000 prompts at a" in text
    assert "| CPU-seconds (edge process) |" in text
    assert "| bytes written to l1 |" in text


def test_the_gate_fails_a_run_over_its_latency_budget(edge_url: str, tmp_path: Path) -> None:
    done = _run(edge_url, tmp_path, "--scenario", "listeners", "--p99-budget-ms", "0.001")
    assert done.returncode == 1
    assert "FAIL" in (tmp_path / "report.md").read_text()


def test_corpus_is_seeded_zipf_and_servable() -> None:
    first, again = corpus.build(300, seed=3), corpus.build(300, seed=3)
    assert first == again
    weights = [e["weight"] for e in first]
    assert weights == sorted(weights, reverse=True)
    assert weights[0] / weights[9] == pytest.approx(10, rel=0.01)  # exponent 1
    kinds = {e["kind"] for e in first}
    assert kinds == {"text", "slots"}
    assert any(e["variants"] for e in first if e["kind"] == "text")


def test_a_spike_run_rises_inside_its_spike_in_the_per_second_p99(
    edge_url: str, tmp_path: Path
) -> None:
    """`--shape spike` (a quarter of the users, all of them for the middle fifth, a quarter
    again): the report's per-second p99 series is higher inside the spike's window than
    outside it, which a cumulative series would not show; the plot and the report are made
    from that series. Medians, not the single highest second: one host stall outside the
    window (a shared two-core machine) can give any one second the highest p99."""
    entries = corpus.build(200, seed=5)
    corpus.write(tmp_path / "corpus.jsonl", entries)
    for entry in entries[:20]:  # the hits scenario's prompts, cached first: no misses inside
        url = f"{edge_url}/v1/playlists?{corpus.query(entry)}"
        with urllib.request.urlopen(url, timeout=30) as answer:
            assert answer.status == 200
    duration = 10
    done = _run(
        edge_url,
        tmp_path,
        *("--scenario", "hits", "--shape", "spike", "--users", "40"),
        *("--duration", str(duration), "--corpus", str(tmp_path / "corpus.jsonl")),
        *("--spawn-rate", "40", "--p99-budget-ms", "60000"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = intervals.read(tmp_path / "latency.csv")
    assert len(rows) >= duration - 1
    assert all(row.p50 <= row.p95 <= row.p99 <= row.max for row in rows)
    assert intervals.peak(rows, min_count=20) is not None
    start, end = (share * duration for share in intervals.SPIKE_WINDOW)
    series = [(row.second, round(row.p99, 1), row.count) for row in rows]
    calm = [row for row in rows if row.second < start - 1 or row.second > end + 1]
    spiked = [row.p99 for row in rows if start <= row.second <= end]  # its last second too
    assert statistics.median(spiked) > statistics.median(row.p99 for row in calm), series
    inside = [row.count for row in rows if start <= row.second < end]
    outside = [row.count for row in calm]
    assert min(inside) > max(outside[1:-1]), series  # more users, more requests per second
    assert "Highest p99 of any second" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "latency.png").stat().st_size > 0
