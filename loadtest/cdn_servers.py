"""Real shared caches for tests and benchmarks: `varnishd` and `nginx` from Debian's
packages, on free loopback ports in front of edge nodes, each stopped by its PID.

Both run as the user that starts them (Varnish with `-j none`, nginx as a non-daemon master
with its files in a working directory), with the configurations in `deploy/`.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import BinaryIO

from loadtest.net import free_port

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
VCL = DEPLOY / "varnish" / "default.vcl"
NGINX_CONF = DEPLOY / "nginx" / "edge-cache.conf"


def installed(binary: str) -> bool:
    """Is `binary` (varnishd, nginx) on PATH or in /usr/sbin?"""
    return _which(binary) is not None


def _which(binary: str) -> str | None:
    return shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/usr/local/sbin")


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, name: str, log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    proc.wait(10)
    raise RuntimeError(f"{name} did not listen on port {port}: {_tail(log)}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


class _Cache:
    """What both caches share: the binary, the origins, a loopback port and the process."""

    binary_name = ""

    def __init__(self, workdir: Path, origins: list[int], port: int | None) -> None:
        binary = _which(self.binary_name)
        if binary is None:
            raise RuntimeError(f"{self.binary_name} is not installed: run `make cdn-servers`")
        self.binary = binary
        self.workdir = workdir
        self.origins = origins
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Stop the server (by its PID; worker children end with it) and wait."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


class VarnishServer(_Cache):
    """One varnishd on 127.0.0.1 with deploy/varnish/default.vcl, in front of `origins`
    (loopback ports of edge nodes)."""

    binary_name = "varnishd"

    def __init__(
        self,
        workdir: Path,
        origins: list[int],
        *,
        port: int | None = None,
        probe_interval: str = "1s",
        storage: str = "malloc,64m",
    ) -> None:
        super().__init__(workdir, origins, port)
        self.probe_interval = probe_interval
        self.storage = storage

    def _backends(self) -> str:
        lines = []
        for number, port in enumerate(self.origins):
            lines.append(
                f'backend edge_{number} {{\n    .host = "127.0.0.1";\n    .port = "{port}";\n'
                "    .probe = edge_ready;\n}\n"
            )
        adds = "".join(f"    edges.add_backend(edge_{n});\n" for n in range(len(self.origins)))
        lines.append(f"sub vcl_init {{\n    new edges = directors.round_robin();\n{adds}}}\n")
        return "\n".join(lines)

    def start(self) -> VarnishServer:
        config = self.workdir / "vcl"
        config.mkdir(parents=True, exist_ok=True)
        (config / "backends.vcl").write_text(self._backends())
        # The shipped VCL, with the probe interval the caller wants (tests: short).
        vcl = VCL.read_text().replace(".interval = 1s;", f".interval = {self.probe_interval};")
        (config / "default.vcl").write_text(vcl)
        log = self.workdir / "varnishd.log"
        with log.open("wb") as out:
            self.proc = self._spawn(out)
        _wait_for_port(self.proc, self.port, "varnishd", log)
        return self

    def _spawn(self, out: BinaryIO) -> subprocess.Popen[bytes]:
        config = self.workdir / "vcl"
        return subprocess.Popen(
            [
                self.binary,
                "-F",
                "-j", "none",
                "-a", f"127.0.0.1:{self.port}",
                "-T", "none",
                "-n", str(self.workdir / "state"),
                "-f", str(config / "default.vcl"),
                "-p", f"vcl_path={config}:/usr/share/varnish/vcl",
                "-p", "feature=+http2",
                "-s", self.storage,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def stats(self) -> dict[str, int]:
        """Varnish's counters (varnishstat -j), by name (`MAIN.cache_hitmiss`, ...)."""
        binary = _which("varnishstat") or "varnishstat"
        done = subprocess.run(
            [binary, "-1", "-j", "-n", str(self.workdir / "state")],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        counters = json.loads(done.stdout)["counters"]
        return {name: int(c.get("value", 0)) for name, c in counters.items()}


class NginxServer(_Cache):
    """One nginx on 127.0.0.1 with deploy/nginx/edge-cache.conf in front of `origins`."""

    binary_name = "nginx"

    def __init__(self, workdir: Path, origins: list[int], *, port: int | None = None) -> None:
        super().__init__(workdir, origins, port)

    def start(self) -> NginxServer:
        work = self.workdir
        (work / "cache").mkdir(parents=True, exist_ok=True)
        (work / "temp").mkdir(exist_ok=True)
        servers = "".join(f"    server 127.0.0.1:{port};\n" for port in self.origins)
        site = (
            NGINX_CONF.read_text()
            .replace("/var/cache/nginx/edge", str(work / "cache"))
            .replace("listen 80;", f"listen 127.0.0.1:{self.port};")
        )
        # Started by root, nginx's workers would become `nobody` and lose the working
        # directory; they stay the starting user (for tests on loopback only).
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
        main = (
            user + "worker_processes 1;\n"
            "daemon off;\n"
            f"pid {work}/nginx.pid;\n"
            f"error_log {work}/error.log warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"  access_log off;\n"
            f"  client_body_temp_path {work}/temp/body;\n"
            f"  proxy_temp_path {work}/temp/proxy;\n"
            f"  fastcgi_temp_path {work}/temp/fastcgi;\n"
            f"  uwsgi_temp_path {work}/temp/uwsgi;\n"
            f"  scgi_temp_path {work}/temp/scgi;\n"
            f"  upstream edges {{\n{servers}    keepalive 16;\n  }}\n"
            f"{site}\n"
            "}\n"
        )
        conf = work / "nginx.conf"
        conf.write_text(main)
        with (work / "stdout.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(conf), "-p", str(work), "-e", str(work / "error.log")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        _wait_for_port(self.proc, self.port, "nginx", work / "error.log")
        return self
