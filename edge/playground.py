"""The playground at `/`: one HTML page, its script and its style, for trying the node in a
browser (a prompt or slots in, the playlist with X-Cache, Server-Timing and version out, and
a live panel of answers by tier read from /metrics).

No build step and no outside assets: the files in `edge/playground/` are read when the
app is built and served from memory under a strict Content-Security-Policy (scripts, styles
and fetches from this origin only, nothing inline). The page is an ops route: under
EDGE_PROTECT_OPS it needs an admin-scope X-API-Key like /metrics.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from litestar import get
from litestar.response import Response

from models import vocab

FILES = Path(__file__).with_name("playground")

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def _options(values: list[str]) -> str:
    empty = '<option value="">any</option>'
    return empty + "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)


def page() -> bytes:
    """The HTML page, its slot menus filled from the intent vocabulary."""
    html = (FILES / "index.html").read_text()
    menus = {
        "{{moods}}": _options([m.name for m in vocab.MOODS]),
        "{{activities}}": _options([a.name for a in vocab.ACTIVITIES]),
        "{{genres}}": _options(list(vocab.GENRES)),
        "{{tempos}}": _options(["slow", "mid tempo", "fast"]),
    }
    for marker, options in menus.items():
        html = html.replace(marker, options)
    return html.encode()


def routes() -> list[Any]:
    """GET / and its script, style and icon (/playground.{js,css,svg}), each read once, here."""
    served = [
        ("/", page(), "text/html; charset=utf-8"),
        ("/playground.js", (FILES / "playground.js").read_bytes(), "text/javascript"),
        ("/playground.css", (FILES / "playground.css").read_bytes(), "text/css"),
        ("/playground.svg", (FILES / "playground.svg").read_bytes(), "image/svg+xml"),
    ]
    return [
        get(path, include_in_schema=False, opt={"scope": "ops"}, name=f"playground:{path}")(
            _serve(body, media_type)
        )
        for path, body, media_type in served
    ]


def _serve(body: bytes, media_type: str) -> Any:
    async def serve() -> Response[bytes]:
        return Response(body, media_type=media_type, headers=HEADERS)

    return serve
