"""Edge apps over the real 20k-track artifact (int8 encoder), driven in-process over ASGI."""

from __future__ import annotations

import asyncio
import http.client
import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from edge.app import EdgeApp, create_app
from edge.service import PlaylistService
from edge.settings import EdgeSettings
from loadtest.net import free_port
from models.artifacts import Artifacts
from models.generator import Timings
from tests.clock import FakeClock


class Client(httpx.AsyncClient):
    """An httpx client wired to one app in this event loop (requests really run concurrently)."""

    app: EdgeApp


ClientFactory = Callable[..., AbstractAsyncContextManager[Client]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def edge(loaded: Artifacts, clock: FakeClock, tmp_path: Path) -> ClientFactory:
    """`async with edge(**settings) as client`: a ready app over the shared artifacts, its
    local state (event log, user-hash key, archive) in the test's own directory."""

    @asynccontextmanager
    async def make(*, lean_path: bool = True, **overrides: object) -> AsyncIterator[Client]:
        defaults = {
            "warmup": False,
            "verify_artifacts": False,
            "global_url": "none",
            "data_dir": str(tmp_path / "edge-data"),
        }
        settings = EdgeSettings(**{**defaults, **overrides})
        app = create_app(settings, artifacts=loaded, clock=clock, lean_path=lean_path)
        transport = httpx.ASGITransport(app=app)
        async with app.lifespan(), Client(transport=transport, base_url="http://edge") as client:
            client.app = app
            await app.node.wait_ready()
            assert app.node.service is not None, app.node.error
            yield client

    return make


def service_of(client: Client) -> PlaylistService:
    service = client.app.node.service
    assert service is not None
    return service


async def wait_until(check: Callable[[], Awaitable[bool]], seconds: float = 10.0) -> None:
    """Poll `check` until it is true; fail the test if it is not within `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        assert loop.time() < deadline, f"not true within {seconds} s"
        await asyncio.sleep(0.02)


async def settle() -> None:
    """Let background revalidations scheduled by the last request finish."""
    for _ in range(200):
        await asyncio.sleep(0.01)


def break_encoder(
    service: PlaylistService, error: Exception | None = None, gate: threading.Event | None = None
) -> list[int]:
    """Make the encoder fail (or block on `gate`); returns a list counting its calls."""
    calls: list[int] = []
    real = service.compute._batcher._embed

    def embed(texts: list[str], timings: Timings) -> np.ndarray:
        calls.append(len(texts))
        if gate is not None:
            gate.wait(10)
        if error is not None:
            raise error
        return real(texts, timings)

    service.compute._batcher._embed = embed
    return calls


SERVING: dict[int, int] = {}
"""The PID of the `python -m edge` process on each port `served` has open."""


@contextmanager
def served(
    artifact_dir: Path, data_dir: Path, *, cwd: Path | None = None, **env: str
) -> Iterator[int]:
    """`python -m edge` on a free loopback port with these environment variables, ready;
    yields the port, then stops the process by its PID."""
    port = free_port()
    environment = {
        **os.environ,
        "EDGE_ARTIFACTS": str(artifact_dir),
        "EDGE_PORT": str(port),
        "EDGE_HOST": "127.0.0.1",
        "EDGE_WARMUP": "false",
        "EDGE_DATA_DIR": str(data_dir),
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge"],
        env=environment,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _ready(port):
            assert proc.poll() is None, f"the edge exited with {proc.returncode}"
            assert time.monotonic() < deadline, "the edge was not ready within 60 s"
            time.sleep(0.2)
        SERVING[port] = proc.pid
        yield port
    finally:
        SERVING.pop(port, None)
        proc.terminate()
        proc.wait(15)


def _ready(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()
