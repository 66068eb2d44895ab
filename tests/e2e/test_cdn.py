"""The node behind real shared caches: varnishd (deploy/varnish/default.vcl, xkey) and
nginx (deploy/nginx/edge-cache.conf) from Debian's packages, on loopback ports in front of
a served node with lifetimes of a few seconds."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from edge.doctor import check_cdn
from loadtest.cdn_servers import NginxServer, VarnishServer, installed
from loadtest.net import free_port

from .conftest import SERVING, served

if not (installed("varnishd") and installed("nginx")):
    if os.environ.get("CI") == "true":
        raise RuntimeError("varnishd and nginx must be installed in CI: `make setup` does it")
    pytest.skip("varnishd or nginx is not installed (make setup)", allow_module_level=True)

ADMIN = "test-admin-key"
TTL = 4  # s-maxage 2, refreshed ahead from an age of 1 s
SWR = 2
SIE = 8
KEY = "reader-key-0123456789"


@dataclass
class Stack:
    node: int
    varnish: VarnishServer
    nginx: NginxServer
    workdir: Path

    def node_get(self, path: str, **headers: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.node}{path}", headers=headers, timeout=10)

    def stats(self) -> dict[str, int]:
        return self.varnish.stats()

    def node_metric(self, needle: str) -> float:
        text = self.node_get("/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if needle in line)


def _stack(artifact_dir: Path, workdir: Path, **env: str) -> Iterator[Stack]:
    varnish_port = free_port()
    settings = {
        "EDGE_TTL": str(TTL),
        "EDGE_TTL_JITTER": "0",
        "EDGE_STALE_WHILE_REVALIDATE": str(SWR),
        "EDGE_STALE_IF_ERROR": str(SIE),
        "EDGE_GLOBAL_URL": "none",
        "EDGE_SEMANTIC": "false",
        "EDGE_ADMIN_KEY": ADMIN,
        "EDGE_CANONICAL_REDIRECT": "true",
        "EDGE_CDN_PURGE_URLS": f"http://127.0.0.1:{varnish_port}",
        **env,
    }
    with served(artifact_dir, workdir / "data", **settings) as port:
        varnish = VarnishServer(
            workdir / "varnish", [port], port=varnish_port, probe_interval="0.3s"
        ).start()
        nginx = NginxServer(workdir / "nginx", [port]).start()
        try:
            yield Stack(port, varnish, nginx, workdir)
        finally:
            varnish.stop()
            nginx.stop()


@pytest.fixture(scope="module")
def stack(artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An open node (no keys) behind Varnish and nginx."""
    yield from _stack(artifact_dir, tmp_path_factory.mktemp("cdn"))


def _get(base: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(base + path, headers=headers, timeout=10)


def _cdn(response: httpx.Response) -> str:
    return response.headers.get("x-cdn-cache", "")


@pytest.mark.parametrize("cache", ["varnish", "nginx"])
def test_a_miss_is_cached_and_the_repeat_is_a_hit(stack: Stack, cache: str) -> None:
    """MISS then HIT through each cache, with the node's bytes, ETag and surrogate keys."""
    base = stack.varnish.url if cache == "varnish" else stack.nginx.url
    path = f"/v1/playlists?q=first%20{cache}%20jazz"
    first, second = _get(base, path), _get(base, path)
    assert (first.status_code, second.status_code) == (200, 200)
    assert (_cdn(first), _cdn(second)) == ("MISS", "HIT")
    assert first.content == second.content
    assert first.headers["etag"] == second.headers["etag"]
    assert "s-maxage=2" in second.headers["cache-control"]


def test_same_etag_means_the_same_bytes(stack: Stack) -> None:
    """Through the cache and straight from the node, over refreshes: one ETag, one body."""
    bodies: dict[str, set[bytes]] = {}
    path = "/v1/playlists?q=etag%20check%20soul"
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        for response in (_get(stack.varnish.url, path), stack.node_get(path)):
            bodies.setdefault(response.headers["etag"], set()).add(response.content)
        time.sleep(0.2)
    assert bodies
    assert all(len(found) == 1 for found in bodies.values())


def test_grace_refresh_is_a_304(stack: Stack) -> None:
    """Past s-maxage but within stale-while-revalidate, Varnish serves its copy and
    refreshes it in the background with If-None-Match; the node answers 304."""
    path = "/v1/playlists?q=grace%20refresh%20blues"
    assert _cdn(_get(stack.varnish.url, path)) == "MISS"
    before = stack.node_metric('status="304"')
    time.sleep(2.3)  # the copy's s-maxage (2 s) is over
    graced = _get(stack.varnish.url, path)
    assert graced.status_code == 200
    assert _cdn(graced) == "HIT"
    deadline = time.monotonic() + 3
    while stack.node_metric('status="304"') <= before:
        assert time.monotonic() < deadline, "no conditional refresh reached the node"
        time.sleep(0.05)


def test_no_hit_for_miss_over_five_lifetimes(stack: Stack) -> None:
    """Steady requests for five shared lifetimes: the node refreshes its entries ahead of
    expiry, so no fetch hands Varnish an expired answer (no hit-for-miss object, no STALE
    from the node) and the node sees a handful of requests per prompt."""
    paths = [f"/v1/playlists?q=steady%20{word}" for word in ("rock", "folk", "disco")]
    for path in paths:
        _get(stack.varnish.url, path)
    stale_before = stack.node_metric('kind="stale"')
    start = stack.stats()
    sent = 0
    deadline = time.monotonic() + 5 * 2  # five lifetimes of s-maxage=2
    with httpx.Client(base_url=stack.varnish.url, timeout=10) as client:
        while time.monotonic() < deadline:
            for path in paths:
                response = client.get(path)
                assert response.status_code == 200
                age = int(response.headers["age"])
                max_age = int(response.headers["cache-control"].split("max-age=")[1].split(",")[0])
                assert age <= max_age
                sent += 1
            time.sleep(0.02)
    end = stack.stats()
    assert end["MAIN.cache_hitmiss"] == start["MAIN.cache_hitmiss"]
    assert stack.node_metric('kind="stale"') == stale_before
    fetched = end["MAIN.backend_req"] - start["MAIN.backend_req"]
    assert 0 < fetched <= len(paths) * 12, fetched  # a copy lives 1 to 2 s
    assert sent > 10 * fetched


def test_purge_by_track_reaches_varnish(stack: Stack) -> None:
    """POST /admin/purge by track drops Varnish's copies within a second (xkey)."""
    path = "/v1/playlists?q=purge%20me%20lofi"
    first = _get(stack.varnish.url, path)
    track = first.json()["tracks"][0]["id"]
    assert _cdn(_get(stack.varnish.url, path)) == "HIT"
    purged = httpx.post(
        f"http://127.0.0.1:{stack.node}/admin/purge",
        json={"tracks": [track]},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert purged.status_code == 200
    assert purged.json()["cdn"] == {stack.varnish.url: "ok"}
    again = _get(stack.varnish.url, path)
    assert _cdn(again) == "MISS"
    assert stack.node_metric('edge_cdn_purges_total{outcome="ok"') >= 1


def test_soft_purge_serves_stale_while_both_refresh(stack: Stack) -> None:
    """A soft purge marks the copies stale in the node and in Varnish: the next request
    still gets the stale copy at once, and the one after a fresh copy."""
    path = "/v1/playlists?q=soft%20purge%20reggae"
    _get(stack.varnish.url, path)
    tag = "p:" + _get(stack.varnish.url, path).json()["prompt_key"]
    purged = httpx.post(
        f"http://127.0.0.1:{stack.node}/admin/purge",
        json={"tags": [tag], "soft": True},
        headers={"authorization": f"Bearer {ADMIN}"},
    )
    assert purged.status_code == 200
    assert purged.json()["softened"]["l1"] == 1
    assert purged.json()["cdn"] == {stack.varnish.url: "ok"}
    fetched = stack.stats()["MAIN.backend_req"]
    stale = _get(stack.varnish.url, path)
    assert stale.status_code == 200
    assert _cdn(stale) == "HIT"  # from grace, while Varnish refetches in the background
    deadline = time.monotonic() + 3
    while stack.stats()["MAIN.backend_req"] == fetched:  # a fresh copy needs no fetch
        assert time.monotonic() < deadline, "the soft purge did not reach Varnish"
        time.sleep(0.05)
    while True:
        fresh = _get(stack.varnish.url, path)
        if fresh.headers["x-cache"] != "STALE" and int(fresh.headers["age"]) < 2:
            break
        assert time.monotonic() < deadline, "the soft-purged answer was not refreshed"
        time.sleep(0.1)


@pytest.mark.parametrize("cache", ["varnish", "nginx"])
def test_equivalent_urls_share_one_cached_answer(stack: Stack, cache: str) -> None:
    """`+` or `%20`, parameter order, case and repeats: one canonical URL (a cacheable 308
    leads there), so the cache holds one answer for them all."""
    base = stack.varnish.url if cache == "varnish" else stack.nginx.url
    word = f"canon{cache}"
    variants = [
        f"/v1/playlists?q=Rainy+{word}&mood=calm&mood=happy",
        f"/v1/playlists?mood=happy,calm&q=rainy%20{word}",
        f"/v1/playlists?q=rainy%20{word}&mood=Calm,happy",
    ]
    canonical = f"/v1/playlists?mood=calm,happy&q=rainy%20{word}"
    bodies = set()
    with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as client:
        for path in variants:
            response = client.get(path)
            assert response.status_code == 200
            assert [r.status_code for r in response.history] in ([308], [])
            assert str(response.url).endswith(canonical)
            bodies.add(response.content)
        last = client.get(canonical)
    assert len(bodies) == 1
    assert _cdn(last) == "HIT"
    moved = httpx.get(base + variants[0], timeout=10)
    assert moved.status_code == 308
    assert moved.headers["location"] == canonical


def test_doctor_checks_that_each_cdn_takes_purges(stack: Stack) -> None:
    """`python -m edge doctor` sends each EDGE_CDN_PURGE_URLS target a harmless PURGE."""
    assert check_cdn(stack.varnish.url).verdict == "OK"
    assert check_cdn(f"http://127.0.0.1:{free_port()}").verdict == "FAIL"
    refused = check_cdn(stack.nginx.url)  # nginx has no purge
    assert refused.verdict == "FAIL"


@pytest.fixture(scope="module")
def keyed(artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A node with API keys behind Varnish and nginx."""
    work = tmp_path_factory.mktemp("cdn-keyed")
    keys = work / "keys"
    keys.write_text(f"reader:read:{hashlib.sha256(KEY.encode()).hexdigest()}\n")
    yield from _stack(artifact_dir, work, EDGE_API_KEYS_FILE=str(keys))


@pytest.mark.parametrize("cache", ["varnish", "nginx"])
def test_no_keyed_answer_reaches_a_keyless_client(keyed: Stack, cache: str) -> None:
    """A keyed answer cached by the CDN is never served to a request without the key (or
    with another one): those reach the node, which refuses them."""
    base = keyed.varnish.url if cache == "varnish" else keyed.nginx.url
    path = f"/v1/playlists?q=members%20only%20{cache}"
    with_key = [_get(base, path, **{"x-api-key": KEY}) for _ in range(2)]
    assert [r.status_code for r in with_key] == [200, 200]
    assert _cdn(with_key[1]) == "HIT"
    assert with_key[1].headers["vary"] == "X-API-Key"
    for _ in range(3):
        keyless = _get(base, path)
        assert keyless.status_code == 401
        assert b"tracks" not in keyless.content
        wrong = _get(base, path, **{"x-api-key": "not-a-key"})
        assert wrong.status_code == 401


def test_stale_if_error_with_the_origin_killed(stack: Stack) -> None:
    """With the node killed, both caches answer with their stale copies within
    stale-if-error, and with errors after it. (Last: it ends the stack's node.)"""
    paths = {
        "varnish": "/v1/playlists?q=origin%20down%20funk",
        "nginx": "/v1/playlists?q=origin%20down%20punk",
    }
    bases = {"varnish": stack.varnish.url, "nginx": stack.nginx.url}
    for name, path in paths.items():
        assert _get(bases[name], path).status_code == 200
    os.kill(SERVING[stack.node], 15)
    time.sleep(2 + SWR + 0.5)  # past s-maxage and stale-while-revalidate
    for name, path in paths.items():
        stale = _get(bases[name], path)
        assert stale.status_code == 200, name
        assert stale.json()["tracks"], name
    # Errors once stale-if-error is over (counted from each copy's expiry, whole seconds).
    killed_until = time.monotonic() + SIE - SWR + 2.5
    failing: set[str] = set()
    while failing != set(paths):
        assert time.monotonic() < killed_until, f"still stale past stale-if-error: {failing}"
        time.sleep(0.25)
        failing |= {n for n, p in paths.items() if _get(bases[n], p).status_code >= 500}
