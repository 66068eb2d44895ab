"""Real `redis-server` processes for tests: free loopback port, stopped by PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from loadtest.net import free_port


class RedisServer:
    """One redis-server on 127.0.0.1; `stop` and `start` keep the port (and, when durable,
    the data: an append-only file synced on every write, replayed at start)."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        detach: bool = False,
        durable: bool = False,
        args: tuple[str, ...] = (),
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run `make redis-server`")
        self.binary = binary
        self.workdir = workdir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.detach = detach
        """Run in its own session, to outlive the process that started it (topologies)."""
        self.durable = durable
        self.args = args
        """More redis-server options, e.g. `("--cluster-enabled", "yes")`."""

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "yes" if self.durable else "no",
                "--appendfsync", "always",
                "--dir", str(self.workdir),
                *self.args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=self.detach,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        """Kill this server (by its PID) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


class RedisClusterServers:
    """A Redis Cluster on loopback, made by `redis-cli --cluster create`: `primaries` masters
    each with `replicas` replicas. A short node timeout lets a replica take over from a lost
    primary in about two seconds, and slots that lose every node fail alone (full coverage
    is not required), which is what a cache wants."""

    def __init__(
        self, workdir: Path, *, primaries: int = 3, replicas: int = 0, node_timeout_ms: int = 1000
    ) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed: run `make redis-server`")
        self.cli = cli
        options = (
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-require-full-coverage", "no",
            "--repl-diskless-sync-delay", "0",
        )  # fmt: skip
        # Each node's cluster bus gets its own free port: the default (port + 10000) can
        # fall outside the port range for an ephemeral port.
        self.nodes = [
            RedisServer(workdir / f"node{n}", args=(*options, "--cluster-port", str(free_port())))
            for n in range(primaries * (1 + replicas))
        ]
        self.replicas = replicas

    @property
    def url(self) -> str:
        """A `redis+cluster://` URL naming every node as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def start(self) -> RedisClusterServers:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{n.port}" for n in self.nodes]
        self._cli("--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas))
        self.wait(lambda: all(self.info(n).get("cluster_state") == "ok" for n in self.nodes))
        # A replica that has not synced yet could not take over: wait for every one.
        self.wait(lambda: len(self._synced()) == len(self.nodes) - len(self.primaries()))
        return self

    def _synced(self) -> list[RedisServer]:
        linked = "master_link_status:up"
        return [n for n in self.nodes if linked in self.command(n, "INFO", "replication")]

    def _cli(self, *args: str) -> str:
        done = subprocess.run(
            [self.cli, *args, "--cluster-yes"], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(args[:2])} failed: {done.stdout[-500:]}")
        return done.stdout

    def command(self, node: RedisServer, *args: str) -> str:
        """One command sent to one node by redis-cli; the reply as text."""
        done = subprocess.run(
            [self.cli, "-p", str(node.port), *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout.strip()

    def info(self, node: RedisServer) -> dict[str, str]:
        lines = self.command(node, "CLUSTER", "INFO").splitlines()
        return dict(line.strip().split(":", 1) for line in lines if ":" in line)

    def node_id(self, node: RedisServer) -> str:
        return self.command(node, "CLUSTER", "MYID")

    def primaries(self) -> list[RedisServer]:
        """The live nodes that are primaries now (a replica can have been promoted)."""
        return [
            n
            for n in self.nodes
            if n.proc is not None and "role:master" in self.command(n, "INFO", "replication")
        ]

    def move_slots(self, source: RedisServer, target: RedisServer, count: int) -> None:
        """Migrate `count` hash slots, with their keys, from `source` to `target`."""
        self._cli(
            "--cluster", "reshard", f"127.0.0.1:{source.port}",
            "--cluster-from", self.node_id(source),
            "--cluster-to", self.node_id(target),
            "--cluster-slots", str(count),
        )  # fmt: skip

    @staticmethod
    def wait(check: Callable[[], bool], seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not check():
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not settle")
            time.sleep(0.1)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
