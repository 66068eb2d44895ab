"""Commands that cannot start fail at once and say why, instead of waiting out a timeout.

Each command is given a readiness timeout far beyond the bound its run is allowed, so only
noticing the failure itself can finish it in time; the messages tell the two apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.launch import StartError, require_artifacts, served_edge, spawn, wait_started
from loadtest.net import free_port

BOUND = 60
"""Seconds a failing start may take here (a Python start-up or two on a busy machine); the
readiness timeouts these commands would otherwise wait out are 120 to 600 s."""


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
        env=env,
    )


def _manifest_only(folder: Path) -> Path:
    """A folder that passes the pre-start check (it holds a readable manifest)."""
    folder.mkdir()
    (folder / "manifest.json").write_text("{}")
    return folder


def test_require_artifacts_names_a_missing_folder(tmp_path: Path) -> None:
    """A path that does not exist is refused with the path and how to build artifacts."""
    missing = tmp_path / "no-such-artifacts"
    with pytest.raises(StartError) as raised:
        require_artifacts(missing)
    assert f"no artifacts at {missing}: no such folder" in str(raised.value)
    assert "python -m models build" in str(raised.value)


def test_require_artifacts_refuses_a_folder_without_a_readable_manifest(tmp_path: Path) -> None:
    """An empty folder, and one whose manifest is not JSON, are refused before any start."""
    with pytest.raises(StartError, match=r"no manifest\.json there; build them with"):
        require_artifacts(tmp_path)
    (tmp_path / "manifest.json").write_text("{half a manifest")
    with pytest.raises(StartError, match="is not a readable manifest"):
        require_artifacts(tmp_path)


def test_wait_started_reports_an_exited_process_with_its_code_and_log(tmp_path: Path) -> None:
    """A server that dies while awaited is reported with its exit code and its last words,
    not after the readiness timeout."""
    log = tmp_path / "server.log"
    script = "import sys; print('refusing: no artifacts at /nowhere', flush=True); sys.exit(3)"
    proc = spawn([sys.executable, "-c", script], {}, log)
    with pytest.raises(StartError) as raised:
        wait_started(proc, free_port(), name="server", log=log, timeout=600)
    assert "server exited with code 3 before it was ready" in str(raised.value)
    assert "refusing: no artifacts at /nowhere" in str(raised.value)


def test_a_served_edge_that_cannot_load_says_why(tmp_path: Path) -> None:
    """Benchmarks' edges: one pointed at a missing folder fails with the edge's own reason."""
    port = free_port()
    missing = tmp_path / "gone"
    env = {**os.environ, "EDGE_ARTIFACTS": str(missing), "EDGE_PORT": str(port)}
    with pytest.raises(StartError) as raised, served_edge(env, port, timeout=600):
        pytest.fail("the edge should not have become ready")
    assert "edge exited with code 2" in str(raised.value)
    assert f"no artifacts at {missing}" in str(raised.value)


def test_topology_up_refuses_missing_artifacts_before_starting_anything(tmp_path: Path) -> None:
    """`topology up` with a wrong --artifacts names the path, starts no process and leaves
    no state behind."""
    state = tmp_path / "topo" / "state.json"
    missing = tmp_path / "missing-artifacts"
    done = _run(
        "loadtest.topology", "--state", str(state), "up", "--regions", "1",
        "--artifacts", str(missing), "--timeout", "600",
    )  # fmt: skip
    assert done.returncode != 0
    assert f"no artifacts at {missing}" in done.stderr
    assert not state.exists()
    assert not (tmp_path / "topo" / "global").exists()  # no Redis was started


def test_topology_up_reports_an_edge_that_exits_while_starting(tmp_path: Path) -> None:
    """An edge that dies at start (here: a setting no node can run with) is reported at once
    by name, with its exit code and the end of its log, and the half-made topology is
    stopped."""
    state = tmp_path / "topo" / "state.json"
    artifacts = _manifest_only(tmp_path / "artifacts")
    done = _run(
        "loadtest.topology", "--state", str(state), "up", "--regions", "1",
        "--edges-per-region", "1", "--artifacts", str(artifacts), "--timeout", "600",
        env={**os.environ, "EDGE_WORKERS": "0"},
    )  # fmt: skip
    assert done.returncode != 0
    assert "r1.edge1 exited with code 2 before it was ready" in done.stderr
    assert "workers must be positive" in done.stderr  # the edge's own reason, from its log
    assert "not ready after" not in done.stderr
    assert not state.exists()  # `down` ran over what had started


def test_a_drill_with_missing_artifacts_fails_before_its_topology(tmp_path: Path) -> None:
    """`python -m loadtest.drills NAME` with a wrong --artifacts names the path and starts
    no topology."""
    out = tmp_path / "drill"
    missing = tmp_path / "missing-artifacts"
    done = _run(
        "loadtest.drills", "redis-kill", "--duration", "15",
        "--artifacts", str(missing), "--out", str(out),
    )  # fmt: skip
    assert done.returncode != 0
    assert f"no artifacts at {missing}" in done.stderr
    assert "topology did not start" not in done.stderr
    assert not (out / "topology").exists()
