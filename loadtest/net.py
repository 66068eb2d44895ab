"""Loopback helpers shared by benchmarks, topologies, drills and tests."""

from __future__ import annotations

import http.client
import socket
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def is_ready(port: int, path: str = "/readyz") -> bool:
    """Does the server on `port` answer `path` with 200?"""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_ready(port: int, path: str = "/readyz", timeout: float = 120.0) -> bool:
    """Poll `path` until it answers 200 (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_ready(port, path):
            return True
        time.sleep(0.1)
    return False
