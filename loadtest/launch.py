"""Starting the service's processes for topologies, drills and benchmarks, failing fast.

A command that cannot start says why within seconds. Its inputs are checked before any
process starts (`require_artifacts`), and a process that exits while it is awaited is
reported at once, with its exit code and the end of its log (`check_running`,
`wait_started`), instead of after the whole readiness timeout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from loadtest.net import is_ready

MANIFEST = "manifest.json"
"""The file every built artifact folder holds (models.artifacts.MANIFEST); checked by name so
that a command refusing a wrong path does not first import the model stack."""


# Outside the service's error tree (`errors`) on purpose: this is a command-line exit of the
# load tools, not an error the service raises. As a SystemExit it ends a drill, topology or
# benchmark with its reason and status 1 without every command catching it, and nothing
# that catches the tree (or Exception) swallows it.
class StartError(SystemExit):
    """A process a command needs could not start; the message says why. As a SystemExit, a
    command that meets it prints the reason and exits 1."""


def require_artifacts(path: Path) -> None:
    """Refuse an artifact folder no edge could serve: missing, or without a readable manifest.

    Checksums and formats are the edge's to verify; an edge refusing them exits, which
    `wait_started` reports at once.
    """
    build = f"build them with `python -m models build --catalog synthetic:20000 --out {path}`"
    if not path.is_dir():
        raise StartError(f"no artifacts at {path}: no such folder; {build}")
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise StartError(f"no artifacts at {path}: no {MANIFEST} there; {build}")
    try:
        json.loads(manifest.read_bytes())
    except ValueError as exc:
        raise StartError(f"{manifest} is not a readable manifest ({exc}); {build}") from exc


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`cmd` in a session of its own (so it outlives its starter and stops with its process
    group), with `env` over this process's environment and its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            cmd,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def log_tail(log: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log ("" when there is none)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def check_running(proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    """Raise StartError, with the exit code and the end of `log`, when `proc` has exited."""
    code = proc.poll()
    if code is not None:
        tail = log_tail(log) or "(empty)"
        raise StartError(f"{name} exited with code {code} before it was ready; {log} ends:\n{tail}")


def wait_started(
    proc: subprocess.Popen[bytes],
    port: int,
    *,
    name: str,
    log: Path,
    timeout: float = 120.0,
    path: str = "/readyz",
) -> None:
    """Poll `path` on `port` until it answers 200; StartError as soon as `proc` exits, or
    when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not is_ready(port, path):
        check_running(proc, name, log)
        if time.monotonic() > deadline:
            raise StartError(f"{name} not ready on port {port} within {timeout:g} s; see {log}")
        time.sleep(0.1)


@contextmanager
def started(
    cmd: list[str],
    env: dict[str, str],
    port: int,
    *,
    name: str,
    path: str = "/readyz",
    timeout: float = 120.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process (see `spawn`) that answers `path` on `port`, its output kept in a
    temporary log for the reason it could not start; stopped, with its process group, on the
    way out."""
    with tempfile.TemporaryDirectory(prefix="loadtest-") as tmp:
        log = Path(tmp) / "server.log"
        proc = spawn(cmd, env, log)
        try:
            wait_started(proc, port, name=name, log=log, timeout=timeout, path=path)
            yield proc
        finally:
            _stop(proc)


@contextmanager
def served_edge(env: dict[str, str], port: int, timeout: float = 120.0) -> Iterator[str]:
    """`python -m edge` with `env`, ready on `port` (see `started`); yields its base URL."""
    with started([sys.executable, "-m", "edge"], env, port, name="edge", timeout=timeout):
        yield f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """SIGTERM to the process group, SIGKILL to it when `grace` seconds are not enough."""
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
