"""`python -m edge`: serve an edge node (granian, uvloop), building default artifacts if asked;
`python -m edge doctor` checks what its configuration depends on (see `edge.doctor`).

Every flag has an EDGE_* form (EDGE_ARTIFACTS, EDGE_HOST, EDGE_PORT, EDGE_WORKERS); flags
win. Worker processes read their settings from the environment this process passes on.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from edge.settings import EdgeSettings

SERVERS = ("granian", "uvicorn")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["doctor"]:
        from edge import doctor

        return doctor.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m edge", description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", help="artifact folder (EDGE_ARTIFACTS)")
    parser.add_argument("--host", help="listen address (EDGE_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (EDGE_PORT, default 8000)")
    parser.add_argument("--workers", type=int, help="server processes (EDGE_WORKERS, default 1)")
    parser.add_argument(
        "--server",
        choices=SERVERS,
        default=os.environ.get("EDGE_SERVER", "granian"),
        help="ASGI server (EDGE_SERVER, default granian)",
    )
    parser.add_argument(
        "--build-catalog",
        metavar="SOURCE",
        help="build the artifacts from SOURCE (e.g. synthetic:20000) if the "
        "folder has no manifest yet",
    )
    args = parser.parse_args(argv)
    try:
        settings = EdgeSettings.from_env(
            artifacts=args.artifacts, host=args.host, port=args.port, workers=args.workers
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder = Path(settings.artifacts)
    if args.build_catalog and not (folder / "manifest.json").exists():
        from models import artifacts

        artifacts.build(args.build_catalog, folder, progress=True)
    if not (folder / "manifest.json").exists():
        print(
            f"error: no artifacts at {folder}; build them with "
            f"`python -m models build --catalog synthetic:20000 --out {folder}`",
            file=sys.stderr,
        )
        return 2
    os.environ.update(settings.env())
    if not os.environ.get("XDG_CACHE_HOME"):
        # Libraries' own caches (onnxruntime keeps a device id and a small database there)
        # go under the data dir too, so the node can run on a read-only root filesystem.
        os.environ["XDG_CACHE_HOME"] = str(Path(settings.data_dir) / "cache")
    serve(settings, args.server)
    return 0


def serve(settings: EdgeSettings, server: str) -> None:
    """Run the edge app factory under the chosen server until interrupted."""
    run_server(
        "edge.app:app_from_env",
        settings.host,
        settings.port,
        settings.workers,
        server,
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
    )


def run_server(
    target: str,
    host: str,
    port: int,
    workers: int,
    server: str,
    *,
    max_header_bytes: int = 16384,
    header_timeout: float = 5.0,
) -> None:
    """Serve an ASGI app factory (`module:function`) with uvloop under granian or uvicorn.

    Under granian the request head is bounded in size and in time (slow clients); uvicorn,
    kept for comparison benchmarks, has neither bound.
    """
    if server == "uvicorn":
        import uvicorn

        uvicorn.run(
            target,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_level="warning",
            lifespan="on",
        )
        return
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.http import HTTP1Settings

    Granian(
        target,
        factory=True,
        address=host,
        port=port,
        workers=workers,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        log_access=False,
        backlog=2048,
        http1_settings=HTTP1Settings(
            header_read_timeout=int(header_timeout * 1000), max_buffer_size=max_header_bytes
        ),
    ).serve()


if __name__ == "__main__":
    sys.exit(main())
