"""The ceiling for `bench http`: a bare ASGI app returning fixed bytes, no framework at all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def app_from_env() -> Any:
    body = Path(os.environ["RAW_ASGI_BODY"]).read_bytes()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
