"""`python -m loadtest.topology up/down`: real processes on loopback, stopped by PID."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path


def _topology(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loadtest.topology", "--state", str(state), *args],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text()


def test_up_serves_through_the_regions_redis_and_down_stops_everything(
    artifact_dir: Path, tmp_path: Path
) -> None:
    state_file = tmp_path / "topo" / "state.json"
    started = _topology(
        state_file,
        "up",
        "--regions",
        "1",
        "--edges-per-region",
        "2",
        "--artifacts",
        str(artifact_dir),
    )
    try:
        assert started.returncode == 0, started.stderr
        state = json.loads(state_file.read_text())
        region = state["regions"]["r1"]
        one, two = (edge["url"] for edge in region["edges"])
        url = "/v1/playlists?q=sunny+ska+for+a+picnic&n=5"
        with urllib.request.urlopen(one + url, timeout=30) as first:
            assert first.headers["x-cache"] == "MISS"
        with urllib.request.urlopen(two + url, timeout=30) as second:
            assert second.headers["x-cache"] == "HIT-L2"  # through the fault proxy to Redis
        again = _topology(state_file, "up", "--regions", "1")
        assert again.returncode != 0  # refuses to start over a recorded topology
        assert "exists" in again.stderr
    finally:
        stopped = _topology(state_file, "down")
    assert stopped.returncode == 0, stopped.stderr
    pids = [region["redis"]["pid"], region["proxy"]["pid"], *(e["pid"] for e in region["edges"])]
    assert not any(_running(pid) for pid in pids)
    assert not state_file.exists()
