"""`python -m edge doctor`: check what a node's configuration depends on, and say so.

It reads the same EDGE_* settings as the node and checks, a line each: the artifacts (the
manifest and every file's checksum), each Redis role's round trip, that the global store
takes a write, the event streams' lag and pending entries, the clock against Redis, and,
when the node answers at its address, the state of its cache tiers (circuit breakers) and
compute, and that each shared cache of EDGE_CDN_PURGE_URLS takes a purge. Each line gets
OK, WARN, FAIL or SKIP; the exit status is 1 when any line FAILs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from edge.cdn import CdnPurger
from edge.settings import EdgeSettings
from models import artifacts as model_artifacts
from models.errors import ArtifactError
from regional.connections import RedisClient, is_redis_url, redis_client, translate_redis_errors
from regional.errors import StoreUnavailable

Verdict = Literal["OK", "WARN", "FAIL", "SKIP"]

LAG_WARN = 10_000
"""Event entries not yet read by a consumer group, beyond which the line warns."""
SKEW_WARN, SKEW_FAIL = 0.25, 2.0
"""Seconds between this clock and Redis's: TTLs and session windows assume they agree."""


@dataclass(frozen=True)
class Line:
    check: str
    verdict: Verdict
    detail: str


def check_artifacts(settings: EdgeSettings) -> Line:
    folder = Path(settings.artifacts)
    started = time.perf_counter()
    try:
        manifest = model_artifacts.read_manifest(folder)
        model_artifacts.verify(folder, manifest)
    except ArtifactError as exc:
        return Line("artifacts", "FAIL", str(exc))
    took = time.perf_counter() - started
    detail = f"{manifest.version}, {manifest.tracks} tracks, checksums verified in {took:.2f} s"
    return Line("artifacts", "OK", detail)


def _roles(settings: EdgeSettings) -> dict[str, str]:
    """Each Redis the node uses, by role."""
    roles = {}
    if settings.l2_url:
        roles["l2"] = settings.l2_url
    if is_redis_url(settings.global_url):
        roles["global"] = settings.global_url
    events = settings.events_url or settings.l2_url
    if settings.events_url != "none" and events:
        roles["events"] = events
    return roles


async def _timed(call: Callable[[], Awaitable[Any]], timeout: float) -> tuple[Any, float]:
    started = time.perf_counter()
    async with asyncio.timeout(timeout):
        result = await call()
    return result, (time.perf_counter() - started) * 1000


async def check_redis(role: str, client: RedisClient, budget_ms: float) -> Line:
    """Round trip of a PING against the tiers' own timeout (`remote_timeout_ms`)."""
    try:
        with translate_redis_errors(f"redis {role}: PING"):
            _, ms = await _timed(client.ping, 5.0)
    except StoreUnavailable as exc:
        return Line(f"redis {role}", "FAIL", f"unreachable: {_reason(exc)}")
    verdict: Verdict = "OK" if ms < budget_ms / 2 else "WARN"
    return Line(f"redis {role}", verdict, f"PING {ms:.1f} ms (tier timeout {budget_ms:g} ms)")


async def check_global_writable(settings: EdgeSettings, client: RedisClient | None) -> Line:
    key = f"doctor:{uuid.uuid4().hex}"
    if client is not None:
        try:
            with translate_redis_errors("global store: SET, GET, DEL"):
                async with asyncio.timeout(5.0):
                    await client.set(key, b"1", px=10_000)
                    ok = await client.get(key) == b"1"
                    await client.delete(key)
        except StoreUnavailable as exc:
            return Line("global store writable", "FAIL", _reason(exc))
        return Line("global store writable", "OK" if ok else "FAIL", "SET, GET, DEL on Redis")
    if settings.global_url.lower() == "none":
        return Line("global store writable", "SKIP", "no global store (EDGE_GLOBAL_URL=none)")
    folder = Path(settings.global_url or Path(settings.data_dir) / "global")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".{key.replace(':', '-')}"
        probe.write_bytes(b"1")
        probe.unlink()
    except OSError as exc:
        return Line("global store writable", "FAIL", f"{folder}: {exc}")
    return Line("global store writable", "OK", f"{folder} takes a file")


async def check_events(settings: EdgeSettings, client: RedisClient | None) -> Line:
    if settings.events_url == "none":
        return Line("event streams", "SKIP", "events API off (EDGE_EVENTS_URL=none)")
    if client is None:
        return Line("event streams", "SKIP", "embedded log: each node reads its own")
    lag = pending = 0
    groups: set[str] = set()
    try:
        with translate_redis_errors("event streams: XINFO GROUPS"):
            for partition in range(settings.events_partitions):
                stream = f"events:{{{settings.region}:{partition}}}"
                if not await client.exists(stream):
                    continue
                for group in await client.xinfo_groups(stream):
                    groups.add(_text(group["name"]))
                    pending += int(group.get("pending") or 0)
                    lag += int(group.get("lag") or 0)
    except StoreUnavailable as exc:
        return Line("event streams", "FAIL", _reason(exc))
    verdict: Verdict = "OK" if lag < LAG_WARN else "WARN"
    detail = f"lag {lag}, pending {pending} across {len(groups)} consumer groups"
    return Line("event streams", verdict, detail)


def _reason(exc: BaseException) -> str:
    """What the driver said (a translated error's cause), as an operator reads it."""
    cause = exc.__cause__ if isinstance(exc, StoreUnavailable) and exc.__cause__ else exc
    return str(cause) or type(cause).__name__


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def check_clock(client: RedisClient) -> Line:
    try:
        with translate_redis_errors("clock: TIME"):
            (seconds, micros), ms = await _timed(client.time, 5.0)
    except StoreUnavailable as exc:
        return Line("clock vs redis", "FAIL", _reason(exc))
    # Redis read its clock about half a round trip ago.
    skew = abs(time.time() - ms / 2000 - (int(seconds) + int(micros) / 1e6))
    verdict: Verdict = "OK" if skew < SKEW_WARN else "WARN" if skew < SKEW_FAIL else "FAIL"
    return Line("clock vs redis", verdict, f"{skew * 1000:.0f} ms apart")


def check_node(url: str, api_key: str | None) -> list[Line]:
    """The running node's own view: its tiers' circuit breakers and its compute."""
    request = urllib.request.Request(url + "/readyz", headers={"x-api-key": api_key or ""})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            doc = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # EDGE_PROTECT_OPS: an admin-scope key is needed
            return [Line("node", "SKIP", f"/readyz wants an admin-scope key ({exc.code})")]
        try:
            doc = json.loads(exc.read() or b"{}")  # 503 while loading or failed
        except ValueError:
            return [Line("node", "FAIL", f"{url}/readyz answered {exc.code}")]
    except (OSError, ValueError) as exc:
        return [Line("node", "SKIP", f"{url} does not answer ({exc.__class__.__name__})")]
    lines = [
        Line(
            "node",
            "OK" if doc.get("status") == "ready" else "FAIL",
            f"{doc.get('status')} {doc.get('version', '')} {doc.get('error', '')}".strip(),
        )
    ]
    states: dict[str, Verdict] = {"ok": "OK", "degraded": "WARN"}
    for tier, state in (doc.get("tiers") or {}).items():
        lines.append(Line(f"breaker {tier}", states.get(state, "FAIL"), state))
    compute = doc.get("compute") or {}
    if compute:
        lines.append(
            Line(
                "compute",
                "OK" if compute.get("state") == "ok" else "WARN",
                f"{compute.get('in_flight')} of {compute.get('limit')} misses in flight",
            )
        )
    return lines


def check_cdn(target: str) -> Line:
    """A PURGE of a tag no answer carries: the cache in front must take it (200)."""
    request = urllib.request.Request(
        target.rstrip("/") + "/",
        method="PURGE",
        headers={"xkey": f"doctor-probe-{uuid.uuid4().hex}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        return Line(f"cdn {target}", "FAIL", f"does not answer ({_reason(exc)})")
    if status == 200:
        return Line(f"cdn {target}", "OK", "takes xkey purges")
    if status == 403:
        return Line(f"cdn {target}", "FAIL", "refuses purges from this address (its ACL)")
    return Line(f"cdn {target}", "FAIL", f"answered a PURGE with {status}: not the shipped VCL?")


async def diagnose(
    settings: EdgeSettings, node_url: str | None, api_key: str | None = None
) -> list[Line]:
    lines = [check_artifacts(settings)]
    budget = settings.remote_timeout_ms
    clients = {role: redis_client(url, timeout=2.0) for role, url in _roles(settings).items()}
    try:
        for role, client in clients.items():
            lines.append(await check_redis(role, client, budget))
        lines.append(await check_global_writable(settings, clients.get("global")))
        lines.append(await check_events(settings, clients.get("events")))
        first = next(iter(clients.values()), None)
        if first is not None:
            lines.append(await check_clock(first))
        else:
            lines.append(Line("clock vs redis", "SKIP", "no Redis configured"))
    finally:
        for client in clients.values():
            await client.aclose()
    for target in CdnPurger.parse(settings.cdn_purge_urls):
        lines.append(await asyncio.to_thread(check_cdn, target))
    if node_url:
        lines += await asyncio.to_thread(check_node, node_url, api_key)
    return lines


def render(lines: list[Line]) -> str:
    width = max(len(line.check) for line in lines)
    rows = [f"{'check'.ljust(width)}  verdict  detail", f"{'-' * width}  -------  ------"]
    rows += [f"{line.check.ljust(width)}  {line.verdict.ljust(7)}  {line.detail}" for line in lines]
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge doctor", description=__doc__)
    parser.add_argument(
        "--node",
        help="the running node's base URL (default: http://EDGE_HOST:EDGE_PORT; 'none' to skip)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("EDGE_DOCTOR_KEY"),
        help="an admin-scope key, when the node protects /readyz (EDGE_DOCTOR_KEY)",
    )
    args = parser.parse_args(argv)
    try:
        settings = EdgeSettings.from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    node = args.node or f"http://{host}:{settings.port}"
    target = None if node == "none" else node.rstrip("/")
    lines = asyncio.run(diagnose(settings, target, args.api_key))
    print(render(lines))
    failed = [line.check for line in lines if line.verdict == "FAIL"]
    print(f"\n{'FAIL: ' + ', '.join(failed) if failed else 'all checks pass'}")
    return 1 if failed else 0
