"""What shared caches are told and sent: s-maxage and its hand-over, canonical query
strings, the keys refreshed ahead of expiry, and purges delivered with retries."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter

from cache.base import Entry
from edge.answers import HeaderPolicy
from edge.cdn import CdnPurger
from edge.query import canonical_query, parse_query
from edge.refresh import RefreshAhead
from models.intent import IntentParser
from tests.clock import FakeClock

PARSER = IntentParser()


def _policy(**overrides: object) -> HeaderPolicy:
    settings: dict[str, object] = {
        "revalidate": 30,
        "stale_if_error": 900,
        "fallback_ttl": 10,
        "private_max_age": 60,
        "shared_share": 0.5,
        "refresh_ahead": 0.5,
    }
    return HeaderPolicy(**{**settings, **overrides})  # type: ignore[arg-type]


ENTRY = Entry(b"{}", 100.0, 200.0, 230.0, 1100.0, etag="e")


@pytest.mark.parametrize(
    ("age", "shared"),
    [(0, 50), (49, 50), (50, 75), (80, 100), (99, 100)],
)
def test_s_maxage_is_half_the_lifetime_and_never_handed_over_expired(age: int, shared: int) -> None:
    """Young answers get s-maxage = half of max-age; one older than that (not refreshed in
    time) still gets some seconds past its Age, never past max-age."""
    control = _policy().cache_control(ENTRY, private=False, age=age)
    assert control == (
        f"public, max-age=100, s-maxage={shared}, stale-while-revalidate=30, stale-if-error=900"
    )
    assert shared > age or shared == 100


def test_refresh_is_due_halfway_through_the_shared_lifetime() -> None:
    assert _policy().refresh_due(ENTRY) == 125.0


def test_vary_on_the_key_only_when_keys_are_configured() -> None:
    """Shared answers of a keyed node say Vary: X-API-Key; private ones and an open node's don't."""
    keyed, open_ = _policy(vary_key=True), _policy()
    assert keyed.headers(ENTRY, label="HIT-L1", age=0, timings={})["vary"] == "X-API-Key"
    assert "vary" not in keyed.headers(ENTRY, label="HIT-L1", age=0, timings={}, private=True)
    assert "vary" not in open_.headers(ENTRY, label="HIT-L1", age=0, timings={})


def _canonical(raw: str) -> str:
    return canonical_query(raw.encode(), default_length=30).decode()


def _key(raw: str) -> str:
    request = parse_query(raw.encode(), genres=PARSER.genres, default_length=30, max_length=100)
    return PARSER.parse(request.prompt, request.slots).key("v1", request.n)


@pytest.mark.parametrize(
    "raw",
    [
        "q=Rainy+Jazz&mood=happy&mood=calm",
        "mood=calm,happy&q=rainy%20jazz",
        "q=rainy%20%20jazz&mood=Happy,calm,calm&n=30",
        "mood=calm&q=RAINY jazz&mood=happy",
    ],
)
def test_equivalent_queries_have_one_canonical_form(raw: str) -> None:
    """Order, `+`/`%20`, case, repeats, spaces and a default n do not change it, and the
    canonical form names the same cache key as the query it stands for."""
    canonical = _canonical(raw)
    assert canonical == "mood=calm,happy&q=rainy%20jazz"
    assert _key(canonical) == _key(raw)
    assert _canonical(canonical) == canonical


def test_canonical_form_keeps_what_differs() -> None:
    """A non-default n, explicit and exclusions stay; the parser reads commas in q as spaces."""
    assert _canonical("q=a%2Cb&n=12&explicit=0&exclude=Jazz") == (
        "exclude=jazz&explicit=false&n=12&q=a%20b"
    )
    assert _canonical("") == ""


def test_refresh_candidates_span_this_window_and_the_last() -> None:
    """Keys answered in the current or the previous window are candidates, most counted
    first; a key's request description survives hits that do not carry it."""
    clock = FakeClock()
    refresh = RefreshAhead(top=2, window=10, clock=clock)
    refresh.hit("a", b"spec-a")
    refresh.hit("b", b"spec-b")
    refresh.hit("a")
    assert refresh.candidates(clock()) == [("a", b"spec-a"), ("b", b"spec-b")]
    clock.advance(10)
    refresh.hit("c", b"spec-c")
    assert dict(refresh.candidates(clock())) == {"a": b"spec-a", "b": b"spec-b", "c": b"spec-c"}
    clock.advance(10)
    refresh.hit("a")
    assert dict(refresh.candidates(clock())) == {"c": b"spec-c", "a": b"spec-a"}
    clock.advance(25)
    assert refresh.candidates(clock()) == []
    assert RefreshAhead(top=0, window=1).candidates(0) == []


def _counter() -> Counter:
    return Counter("cdn", "test", ["target", "outcome"], registry=CollectorRegistry())


def _value(counter: Counter, target: str, outcome: str) -> float:
    return float(counter.labels(target, outcome)._value.get())


async def test_purge_sends_xkey_and_retries_with_backoff() -> None:
    """One PURGE per target with the tags in `xkey` (`xkey-softpurge` when soft); a failed
    target is retried with growing waits until it answers, and counted."""
    seen: list[tuple[str, str, dict[str, str]]] = []
    failures = {"http://b:6081": 2}

    def answer(request: httpx.Request) -> httpx.Response:
        target = f"{request.url.scheme}://{request.url.netloc.decode()}"
        seen.append((request.method, target, dict(request.headers)))
        if failures.get(target, 0) > 0:
            failures[target] -= 1
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200)

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    counter = _counter()
    purger = CdnPurger(
        ["http://a:6081/", "http://b:6081"],
        counter,
        transport=httpx.MockTransport(answer),
        sleep=sleep,
        backoff=0.25,
    )
    result = await purger.purge(["t:1", "t:2"])
    assert result == {"http://a:6081": "ok", "http://b:6081": "retrying"}
    await purger.drain()
    assert all(method == "PURGE" for method, _, _ in seen)
    assert {headers["xkey"] for _, _, headers in seen} == {"t:1 t:2"}
    assert len(slept) == 2
    assert slept[1] > slept[0] / 2  # the wait grows (with jitter)
    assert _value(counter, "http://b:6081", "ok") == 1
    assert _value(counter, "http://b:6081", "retried") == 1
    soft = await purger.purge(["p:x"], soft=True)
    assert soft == {"http://a:6081": "ok", "http://b:6081": "ok"}
    assert seen[-1][2]["xkey-softpurge"] == "p:x"
    await purger.close()


async def test_a_refused_purge_is_not_retried_and_one_never_delivered_gives_up() -> None:
    counter = _counter()

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403 if request.url.host == "a" else 503)

    async def sleep(_seconds: float) -> None:
        await asyncio.sleep(0)

    purger = CdnPurger(
        ["http://a", "http://b"],
        counter,
        retries=3,
        transport=httpx.MockTransport(answer),
        sleep=sleep,
    )
    assert await purger.purge(["t:1"]) == {"http://a": "failed", "http://b": "retrying"}
    await purger.drain()
    assert _value(counter, "http://a", "failed") == 1
    assert _value(counter, "http://b", "failed") == 1
    assert await purger.purge([]) == {}
    await purger.close()


def test_compose_puts_a_varnish_in_front_of_each_region() -> None:
    """Each region's Varnish balances that region's edges, and those edges purge through it."""
    root = Path(__file__).parents[2]
    services = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    for region in ("r1", "r2"):
        varnish = services[f"varnish-{region}"]
        backends = varnish["volumes"][0].split(":")[0]
        text = (root / backends).read_text()
        edges = sorted(name for name in services if name.startswith(f"edge-{region}-"))
        assert edges == [f"edge-{region}-1", f"edge-{region}-2"]
        assert all(f'.host = "{edge}"' in text for edge in edges)
        for edge in edges:
            env = services[edge]["environment"]
            assert env["EDGE_CDN_PURGE_URLS"] == f"http://varnish-{region}:6081"
