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


def _state_letter(pid: int) -> str:
    """R running, S sleeping, T stopped (by SIGSTOP), from /proc/PID/stat."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


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
        assert _state_letter(region["redis"]["pid"]) in "SR"
        assert _topology(state_file, "pause", "r1.redis").returncode == 0
        assert _state_letter(region["redis"]["pid"]) == "T"
        assert _topology(state_file, "resume", "r1.redis").returncode == 0
        assert _state_letter(region["redis"]["pid"]) in "SR"
        unknown = _topology(state_file, "kill", "r9.edge1")
        assert unknown.returncode != 0
        assert "r1.edge2" in unknown.stderr
        listed = _topology(state_file, "status").stdout
        assert all(name in listed for name in ("global.redis", "r1.proxy", "r1.edge2"))
        again = _topology(state_file, "up", "--regions", "1")
        assert again.returncode != 0  # refuses to start over a recorded topology
        assert "exists" in again.stderr
    finally:
        stopped = _topology(state_file, "down")
    assert stopped.returncode == 0, stopped.stderr
    pids = [region["redis"]["pid"], region["proxy"]["pid"], *(e["pid"] for e in region["edges"])]
    pids += [state["global"]["redis"]["pid"], state["global"]["proxy"]["pid"]]
    assert not any(_running(pid) for pid in pids)
    assert not state_file.exists()
