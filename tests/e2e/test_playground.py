"""The playground page at `/`, over ASGI: served as separate files under a strict
Content-Security-Policy, nothing inline, and off under EDGE_PROTECT_OPS unless the key allows."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from edge.playground import CONTENT_SECURITY_POLICY

from .conftest import ClientFactory

ASSETS = {
    "/": "text/html",
    "/playground.js": "text/javascript",
    "/playground.css": "text/css",
    "/playground.svg": "image/svg+xml",
}


async def test_the_page_and_its_files_carry_a_strict_policy(edge: ClientFactory) -> None:
    """Each file answers 200 with its type, the CSP (self only, no 'unsafe-inline'),
    nosniff and no-referrer; the page names every asset by a same-origin path."""
    async with edge() as client:
        for path, media_type in ASSETS.items():
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(media_type), path
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
        html = (await client.get("/")).text
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY
    for src in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert src.startswith("/"), src  # no outside assets
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/playground.js" defer>']
    assert "<style" not in html
    assert not re.search(r"\son[a-z]+=", html)  # no inline event handlers
    assert '<option value="calm">calm</option>' in html  # slot menus filled in
    assert "{{" not in html


async def test_the_page_is_off_under_protect_ops_unless_the_key_allows(
    edge: ClientFactory, tmp_path: Path
) -> None:
    """With EDGE_PROTECT_OPS the page and its files need an admin-scope key, as /metrics does:
    401 without one, 403 with a read key, 200 with the operator's."""
    keys = tmp_path / "keys"
    digest = {k: hashlib.sha256(k.encode()).hexdigest() for k in ("reader-1", "operator-1")}
    keys.write_text(f"web:read:{digest['reader-1']}\nops:admin:{digest['operator-1']}\n")
    async with edge(api_keys_file=str(keys), protect_ops=True) as client:
        for path in ASSETS:
            refused = await client.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["content-type"].startswith("application/problem+json")
            assert (await client.get(path, headers={"x-api-key": "reader-1"})).status_code == 403
            ok = await client.get(path, headers={"x-api-key": "operator-1"})
            assert ok.status_code == 200, path
    async with edge(api_keys_file=str(keys)) as client:  # ops open: the page is too
        assert (await client.get("/")).status_code == 200


async def test_unknown_methods_and_paths_are_problems_not_errors(edge: ClientFactory) -> None:
    """A POST to the page is a 405 and an unknown asset a 404, both problem+json."""
    async with edge() as client:
        posted = await client.post("/", content=b"x")
        assert posted.status_code == 405
        missing = await client.get("/playground.map")
        assert missing.status_code == 404
        for response in (posted, missing):
            assert response.headers["content-type"].startswith("application/problem+json")
