"""A TCP fault proxy for drills: sits between edges and a Redis and misbehaves on command.

Written here because no maintained fault-proxy server can be installed from the package
registries this project uses (PyPI, Debian's packages); it is a small asyncio relay.

Faults, settable at run time (in process through `Faults`, or over the control port with
one-line commands such as `latency 200`, `blackhole on`, `reset`, `bandwidth 20000`,
`clear`, answered by `ok` or `error ...`):
  latency    milliseconds added before each chunk is forwarded, both directions
  blackhole  connections are accepted and data is swallowed: nothing ever answers
  reset      open connections are aborted (RST) and new ones are reset at once while on
  bandwidth  bytes per second per direction (0 = unlimited)

`python -m loadtest.faultproxy --listen 7000 --target 127.0.0.1:6379 --control 7001`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import struct
from dataclasses import dataclass


@dataclass
class Faults:
    latency_ms: float = 0.0
    blackhole: bool = False
    reset: bool = False
    bandwidth: int = 0

    def clear(self) -> None:
        self.latency_ms, self.blackhole, self.reset, self.bandwidth = 0.0, False, False, 0


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed peer or a middlebox reset would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    def __init__(self, target: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = target
        self.host = host
        self.port = port
        self.faults = Faults()
        self._server: asyncio.Server | None = None
        self._control: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self, control_port: int | None = None) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if control_port is not None:
            self._control = await asyncio.start_server(self._command, self.host, control_port)
        return self

    async def close(self) -> None:
        for server in (self._server, self._control):
            if server is not None:
                server.close()
        for writer in list(self._open):
            writer.transport.abort()
        for server in (self._server, self._control):
            if server is not None:
                await server.wait_closed()

    def reset_all(self) -> None:
        """Abort every open connection now."""
        for writer in list(self._open):
            _abort(writer)

    # -- relaying ----------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.faults.reset:
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(
                self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
            )
        finally:
            for end in (writer, up_writer):
                self._open.discard(end)
                end.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            faults = self.faults
            if faults.blackhole:
                continue  # swallowed: the peer waits for an answer that never comes
            if faults.latency_ms > 0:
                await asyncio.sleep(faults.latency_ms / 1000)
            if faults.bandwidth > 0:
                await asyncio.sleep(len(chunk) / faults.bandwidth)
            writer.write(chunk)
            await writer.drain()
        writer.transport.abort()

    # -- control -----------------------------------------------------------------------

    def apply(self, command: str) -> str:
        """Apply one control command; the reply line."""
        words = command.split()
        if not words:
            return "error: empty command"
        name, args = words[0].lower(), words[1:]
        try:
            if name == "clear":
                self.faults.clear()
            elif name == "latency":
                self.faults.latency_ms = float(args[0])
            elif name == "bandwidth":
                self.faults.bandwidth = int(args[0])
            elif name == "blackhole":
                self.faults.blackhole = args[0] == "on"
            elif name == "reset":
                self.faults.reset = not args or args[0] == "on"
                if self.faults.reset:
                    self.reset_all()
            elif name == "status":
                return f"ok {self.faults}"
            else:
                return f"error: unknown command {name!r}"
        except (IndexError, ValueError):
            return f"error: bad arguments for {name!r}"
        return "ok"

    async def _command(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                writer.write(self.apply(line.decode(errors="replace")).encode() + b"\n")
                await writer.drain()
        writer.close()


def send_command(port: int, command: str, host: str = "127.0.0.1") -> str:
    """Send one control command to a running proxy; its reply."""
    with socket.create_connection((host, port), timeout=5) as conn:
        conn.sendall(command.encode() + b"\n")
        return conn.makefile().readline().strip()


async def _serve(listen: int, target: tuple[str, int], control: int) -> None:
    proxy = await FaultProxy(target, port=listen).start(control_port=control)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.faultproxy", description=__doc__)
    parser.add_argument("--listen", type=int, required=True, help="port to accept clients on")
    parser.add_argument("--target", required=True, help="host:port to relay to")
    parser.add_argument("--control", type=int, required=True, help="port for fault commands")
    args = parser.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    asyncio.run(_serve(args.listen, (host, int(port)), args.control))


if __name__ == "__main__":
    main()
