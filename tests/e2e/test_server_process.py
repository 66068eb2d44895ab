"""`python -m edge` as a real server process on a free loopback port, stopped by PID."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

from loadtest.net import free_port


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_python_m_edge_serves_from_env_settings(artifact_dir: Path, tmp_path: Path) -> None:
    """EDGE_* variables configure the node; it becomes ready and answers over TCP."""
    port = free_port()
    env = {
        **os.environ,
        "EDGE_ARTIFACTS": str(artifact_dir),
        "EDGE_PORT": str(port),
        "EDGE_HOST": "127.0.0.1",
        "EDGE_WARMUP": "false",
        "EDGE_DATA_DIR": str(tmp_path / "data"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if _get(port, "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        first = _get(port, "/v1/playlists?q=deep+focus&n=5")
        second = _get(port, "/v1/playlists?q=deep+focus&n=5")
    finally:
        proc.terminate()
        proc.wait(15)
    assert first[0] == second[0] == 200
    assert (first[1]["x-cache"], second[1]["x-cache"]) == ("MISS", "HIT-L1")
    assert second[1]["etag"] == first[1]["etag"]
    assert b'"tier":"L1"' in second[2]
