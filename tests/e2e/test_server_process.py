"""`python -m edge` as a real server process on a free loopback port, stopped by PID."""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import served


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
    with served(artifact_dir, tmp_path / "data") as port:
        first = _get(port, "/v1/playlists?q=deep+focus&n=5")
        second = _get(port, "/v1/playlists?q=deep+focus&n=5")
    assert first[0] == second[0] == 200
    assert (first[1]["x-cache"], second[1]["x-cache"]) == ("MISS", "HIT-L1")
    assert second[1]["etag"] == first[1]["etag"]
    assert second[2] == first[2]


@pytest.fixture
def strict_server(artifact_dir: Path, tmp_path: Path) -> Iterator[int]:
    """A served node with short slow-client bounds; yields its port."""
    with served(
        artifact_dir, tmp_path / "data", EDGE_HEADER_TIMEOUT="1", EDGE_BODY_TIMEOUT="1"
    ) as port:
        yield port


def _raw(port: int, *parts: bytes) -> tuple[bytes, float]:
    """Send `parts` over one connection and wait; the reply's first bytes (empty if the
    server closed without one) and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for part in parts:
            conn.sendall(part)
        try:
            reply = conn.recv(4096)
        except ConnectionResetError:
            reply = b""
    return reply, time.monotonic() - started


def test_oversized_heads_get_431(strict_server: int) -> None:
    """More than 100 header fields, or a head over max_header_bytes, is refused early."""
    many = b"".join(b"x-h%d: v\r\n" % n for n in range(150))
    reply, _ = _raw(strict_server, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + many + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431")
    big = b"x-big: " + b"a" * 20_000 + b"\r\n"
    reply, _ = _raw(strict_server, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + big + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 431")
    fine = b"x-ok: " + b"a" * 4_000 + b"\r\n"
    reply, _ = _raw(strict_server, b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + fine + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 200")


def test_slow_clients_are_cut_off(strict_server: int) -> None:
    """A head that trickles in is dropped after header_timeout; a body that does not arrive
    in body_timeout gets 408 problem+json."""
    reply, took = _raw(strict_server, b"GET /healthz HTTP/1.1\r\nhost: x\r\n")  # unfinished
    assert not reply.startswith(b"HTTP/1.1 200")
    assert 0.9 < took < 5
    head = (
        b"POST /v1/playlists HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 100\r\n\r\n"
    )
    reply, took = _raw(strict_server, head, b'{"prompt": ')
    assert reply.startswith(b"HTTP/1.1 408")
    assert b"application/problem+json" in reply
    assert 0.9 < took < 5


def _files(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_a_node_writes_only_under_its_data_dir(artifact_dir: Path, tmp_path: Path) -> None:
    """What a read-only root filesystem needs: serving misses, hits and events writes
    nothing to the working directory, HOME or the artifacts (the temp directory, a tmpfs in
    the container, gets onnxruntime's small session file)."""
    cwd, home, temp, data = (tmp_path / name for name in ("cwd", "home", "tmp", "data"))
    for folder in (cwd, home, temp):
        folder.mkdir()
    before = _files(artifact_dir)
    event = (
        b'{"events": [{"event_id": "evt-readonly-1", "type": "play", "playlist": "fp0", '
        b'"prompt_key": "pk0", "track_id": "t0", "position": 0, '
        b'"ts": "2026-11-23T10:00:00+00:00", "user": "listener-1"}]}'
    )
    with served(
        artifact_dir,
        data,
        cwd=cwd,
        HOME=str(home),
        TMPDIR=str(temp),
        XDG_CACHE_HOME="",
        PYTHONDONTWRITEBYTECODE="1",
    ) as port:
        for _ in range(2):
            assert _get(port, "/v1/playlists?q=quiet+piano+for+reading&n=5")[0] == 200
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1/events", body=event, headers={"content-type": "application/json"})
        assert conn.getresponse().status == 200
        conn.close()
        time.sleep(1.5)  # the write-behind queue reaches the global store
    assert _files(cwd) == {}
    assert _files(home) == {}
    assert _files(artifact_dir) == before
    written = _files(data)
    assert any(name.startswith("global/") for name in written)  # the disk global store
    assert "events.sqlite" in written
