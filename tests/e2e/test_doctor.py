"""`python -m edge doctor` against real Redis servers and a served node."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlencode

import httpx

from loadtest.net import free_port
from loadtest.redis_server import RedisServer

from .conftest import served


def _doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", "doctor", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _verdicts(output: str) -> dict[str, str]:
    rows = [line.split() for line in output.splitlines()[2:] if line.strip()]
    return {" ".join(row[: row.index(v)]): v for row in rows for v in row if v in _VERDICTS}


_VERDICTS = ("OK", "WARN", "FAIL", "SKIP")


def test_a_healthy_configuration_passes_line_by_line(
    artifact_dir: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    redis = {"EDGE_L2_URL": redis_server.url, "EDGE_GLOBAL_URL": redis_server.url}
    env = {"EDGE_ARTIFACTS": str(artifact_dir), "EDGE_DATA_DIR": str(tmp_path / "data"), **redis}
    with served(artifact_dir, tmp_path / "data", **redis) as port:
        url = f"http://127.0.0.1:{port}"
        query = urlencode({"q": "rainy cafe jazz", "n": 5})
        assert httpx.get(f"{url}/v1/playlists?{query}").status_code == 200
        done = _doctor(env, "--node", url)
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = _verdicts(done.stdout)
    for check in (
        "artifacts",
        "redis l2",
        "redis global",
        "redis events",
        "global store writable",
        "event streams",
        "clock vs redis",
        "node",
        "breaker l2",
        "breaker global",
        "compute",
    ):
        assert verdicts.get(check) in ("OK", "WARN"), (check, done.stdout)
    assert "consumer groups" in done.stdout
    assert "all checks pass" in done.stdout


def test_a_missing_redis_and_broken_artifacts_fail(artifact_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "artifacts"
    broken.mkdir()
    for file in artifact_dir.iterdir():
        (broken / file.name).write_bytes(file.read_bytes())
    index = broken / "index.hnsw"
    data = bytearray(index.read_bytes())
    data[-1] ^= 0xFF  # one byte changed, the size kept
    index.write_bytes(bytes(data))
    env = {
        "EDGE_ARTIFACTS": str(broken),
        "EDGE_DATA_DIR": str(tmp_path / "data"),
        "EDGE_L2_URL": f"redis://127.0.0.1:{free_port()}/0",  # nobody listens
    }
    done = _doctor(env, "--node", "none")
    assert done.returncode == 1
    verdicts = _verdicts(done.stdout)
    assert verdicts["artifacts"] == "FAIL"
    assert verdicts["redis l2"] == "FAIL"
    assert verdicts["global store writable"] == "OK"  # the local disk store still works
    assert "FAIL: artifacts, redis l2" in done.stdout
