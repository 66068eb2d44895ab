"""`python -m loadtest.bench loop`: the learning loop end to end, on a served node.

1. A content-only artifact is built and served (`python -m edge`, the region's event log in a
   real redis-server, the archiver writing Parquet).
2. Simulated listeners with hidden tastes ask for playlists and send events: each group of
   listeners of a prompt prefers a seeded set of tracks, mostly ones the content model does
   not rank first (drawn from beyond the first `n` of a long answer). They save or complete
   what they prefer and skip most of the rest early.
3. Once the archive holds every accepted event, a retrain builds a candidate version that
   learns from it (`models.artifacts.build(..., events=[archive])`).
4. The node loads the candidate; a shadow comparison runs on the current version's misses,
   then a 50 % split answers each prompt for probe listeners on both versions; recall@n
   against the preferred tracks is measured for both in the same run, and their ratio.
5. The candidate is promoted, then rolled back.

The same pieces (`hidden_tastes`, `listen`, `answers_by_variant`, `recall`) drive the
end-to-end test over an in-process app.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from loadtest.launch import served_edge
from loadtest.net import free_port
from loadtest.prompts import unique_prompts
from loadtest.redis_server import RedisServer

LONG = 100
"""Length of the playlists listeners ask for (the node's longest)."""
WHEN = "2026-12-01T20:00:00+00:00"


@dataclass(frozen=True)
class Tastes:
    """What each prompt's listeners prefer, hidden from the node: track ids per prompt."""

    preferred: dict[str, frozenset[str]]

    @property
    def prompts(self) -> list[str]:
        return list(self.preferred)


def hidden_tastes(
    answers: Mapping[str, Sequence[str]],
    *,
    seed: int,
    size: int = 30,
    first: int = 30,
    within: int = 6,
) -> Tastes:
    """Per prompt, `size` preferred tracks of its long answer: `within` among its first
    `first` tracks, the rest from further down (what the content model does not rank first)."""
    rng = np.random.default_rng(seed)
    preferred = {}
    for prompt, ids in answers.items():
        top, rest = list(ids[:first]), list(ids[first:])
        if len(top) < within or len(rest) < size - within:
            raise ValueError(f"{prompt!r}: an answer of {len(ids)} tracks is too short")
        picked = rng.choice(top, within, replace=False).tolist()
        picked += rng.choice(rest, size - within, replace=False).tolist()
        preferred[prompt] = frozenset(picked)
    return Tastes(preferred)


def recall(answers: Mapping[str, Sequence[str]], tastes: Tastes, n: int) -> float:
    """Mean over prompts of the share of the preferred tracks among an answer's first `n`."""
    shares = [
        len(set(answers[p][:n]) & wanted) / min(n, len(wanted))
        for p, wanted in tastes.preferred.items()
    ]
    return float(np.mean(shares))


async def playlist(client: httpx.AsyncClient, prompt: str, n: int) -> dict[str, Any]:
    """The shared answer to a prompt (GET, as a CDN-fronted app asks)."""
    answer = await client.get("/v1/playlists", params={"q": prompt, "n": n})
    answer.raise_for_status()
    doc: dict[str, Any] = answer.json()
    return doc


async def answers(
    client: httpx.AsyncClient, prompts: Sequence[str], n: int
) -> dict[str, list[str]]:
    return {p: [t["id"] for t in (await playlist(client, p, n))["tracks"]] for p in prompts}


async def listen(
    client: httpx.AsyncClient, tastes: Tastes, *, listeners: int, seed: int, batch: int = 500
) -> int:
    """Every listener of every prompt fetches its long playlist and reports on each track:
    a save or complete for most preferred ones, an early skip for most others, else a play.
    Returns how many events the node accepted."""
    rng = np.random.default_rng(seed)
    events: list[dict[str, Any]] = []
    for p, (prompt, wanted) in enumerate(tastes.preferred.items()):
        for listener in range(listeners):
            doc = await playlist(client, prompt, LONG)
            for position, track in enumerate(t["id"] for t in doc["tracks"]):
                draw = rng.random()
                if track in wanted:
                    kind, dwell = ("save", 95_000) if draw < 0.4 else ("complete", 210_000)
                    if draw >= 0.8:
                        kind, dwell = "play", 40_000
                elif draw < 0.7:
                    kind, dwell = "skip", int(rng.integers(1_000, 10_000))
                else:
                    kind, dwell = "play", 60_000
                events.append(
                    {
                        "event_id": f"loop-{seed}-{p:03d}-{listener:03d}-{position:03d}",
                        "type": kind,
                        "playlist": doc["fingerprint"],
                        "prompt_key": doc["prompt_key"],
                        "track_id": track,
                        "position": position,
                        "dwell_ms": dwell,
                        "ts": WHEN,
                        "user": f"listener-{seed}-{p}-{listener}",
                        "prompt": prompt,
                    }
                )
    accepted = 0
    for start in range(0, len(events), batch):
        sent = await client.post("/v1/events", json={"events": events[start : start + batch]})
        sent.raise_for_status()
        accepted += int(sent.json()["accepted"])
    return accepted


async def answers_by_variant(
    client: httpx.AsyncClient, prompts: Sequence[str], n: int, *, tries: int = 64
) -> dict[str, dict[str, list[str]]]:
    """During a split: each prompt answered for probe listeners until both the primary and
    the candidate have answered it (routing is per listener)."""
    found: dict[str, dict[str, list[str]]] = {"primary": {}, "candidate": {}}
    for prompt in prompts:
        for attempt in range(tries):
            body = {"schema_version": 1, "prompt": prompt, "n": n, "user": f"probe-{attempt}"}
            answer = await client.post("/v1/playlists", json=body)
            answer.raise_for_status()
            variant = answer.headers["x-variant"]
            found[variant].setdefault(prompt, [t["id"] for t in answer.json()["tracks"]])
            if all(prompt in by_prompt for by_prompt in found.values()):
                break
        else:
            raise RuntimeError(f"{prompt!r}: not answered by both versions in {tries} tries")
    return found


class Admin:
    """The node's version endpoints, with its admin key."""

    def __init__(self, client: httpx.AsyncClient, key: str) -> None:
        self.client = client
        self.headers = {"authorization": f"Bearer {key}"}

    async def versions(self) -> dict[str, Any]:
        answer = await self.client.get("/admin/versions", headers=self.headers)
        answer.raise_for_status()
        doc: dict[str, Any] = answer.json()
        return doc

    async def act(self, **body: object) -> dict[str, Any]:
        answer = await self.client.post("/admin/versions", json=body, headers=self.headers)
        if answer.status_code != 200:
            raise RuntimeError(f"{body}: {answer.status_code} {answer.text}")
        doc: dict[str, Any] = answer.json()
        return doc

    async def until(self, done: Callable[[dict[str, Any]], bool], seconds: float) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            doc = await self.versions()
            if doc["state"] == "failed":
                raise RuntimeError(f"the candidate failed to load: {doc['error']}")
            if done(doc):
                return doc
            if time.monotonic() > deadline:
                raise RuntimeError(f"not done within {seconds} s: {doc}")
            await asyncio.sleep(0.1)


def comparisons(doc: dict[str, Any]) -> tuple[int, float]:
    """Shadow comparisons made so far and the sum of their overlaps, over every slot kind."""
    kinds = doc["agreement"].values()
    count = sum(k["count"] for k in kinds)
    return count, sum(k["overlap_mean"] * k["count"] for k in kinds if k["count"])


async def shadow_overlap(
    client: httpx.AsyncClient, admin: Admin, prompts: Sequence[str], n: int
) -> tuple[int, float]:
    """Misses of `prompts` (at a length not asked yet) answered by the current version and
    shadowed by the candidate: how many were compared, and their mean overlap."""
    count, total = comparisons(await admin.versions())
    await answers(client, prompts, n)
    after = await admin.until(lambda d: comparisons(d)[0] >= count + len(prompts), 60)
    more, more_total = comparisons(after)
    return more - count, (more_total - total) / max(more - count, 1)


async def roll_out(
    client: httpx.AsyncClient,
    admin: Admin,
    candidate: Path,
    tastes: Tastes,
    *,
    n: int,
    shadow_n: int,
    untaught: Sequence[str] = (),
) -> dict[str, Any]:
    """Load `candidate`, shadow the current version's misses (the listeners' prompts, then
    `untaught` ones), split 50 %, measure both versions against the tastes, promote, roll
    back; the figures."""
    before = (await admin.versions())["primary"]
    await admin.act(action="load", artifacts=str(candidate))
    loaded = await admin.until(lambda d: d["state"] == "ready", 120)
    await admin.act(action="shadow", ratio=1.0)
    count, overlap = await shadow_overlap(client, admin, tastes.prompts, shadow_n)
    others, other_overlap = (
        await shadow_overlap(client, admin, untaught, shadow_n) if untaught else (0, float("nan"))
    )
    await admin.act(action="shadow", ratio=0.0)
    await admin.act(action="split", percent=50)
    by_variant = await answers_by_variant(client, tastes.prompts, n)
    await admin.act(action="promote")
    promoted = (await playlist(client, tastes.prompts[0], n))["version"]
    await admin.act(action="rollback")
    rolled_back = (await playlist(client, tastes.prompts[0], n))["version"]
    current, learned = (recall(by_variant[v], tastes, n) for v in ("primary", "candidate"))
    return {
        "current_version": before,
        "candidate_version": loaded["candidate"],
        "shadow_comparisons": count,
        "shadow_overlap": overlap,
        "untaught_comparisons": others,
        "untaught_overlap": other_overlap,
        "recall_current": current,
        "recall_candidate": learned,
        "ratio": learned / current if current else float("inf"),
        "served_after_promote": promoted,
        "served_after_rollback": rolled_back,
    }


# --- the benchmark ------------------------------------------------------------------------


async def _wait_archived(
    archived: Callable[[], Awaitable[int]], events: int, seconds: float
) -> int:
    deadline = time.monotonic() + seconds
    while (held := await archived()) < events:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the archive holds {held} of {events} events after {seconds} s")
        await asyncio.sleep(0.2)
    return held


async def _drive(
    base: str, key: str, archive: Path, build: Callable[[], Path], args: dict[str, Any]
) -> dict[str, Any]:
    from regional.archive import read_archive

    async def archived() -> int:
        return read_archive(archive).num_rows if archive.exists() else 0

    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        prompts = unique_prompts(args["prompts"], seed=args["seed"])
        untaught = [
            p for p in unique_prompts(args["prompts"], seed=args["seed"] + 1) if p not in prompts
        ]
        tastes = hidden_tastes(await answers(client, prompts, LONG), seed=args["seed"])
        started = time.perf_counter()
        sent = await listen(client, tastes, listeners=args["listeners"], seed=args["seed"])
        held = await _wait_archived(archived, sent, 120)
        listened = time.perf_counter() - started
        started = time.perf_counter()
        candidate = await asyncio.to_thread(build)
        built = time.perf_counter() - started
        figures = await roll_out(
            client,
            Admin(client, key),
            candidate,
            tastes,
            n=args["n"],
            shadow_n=args["n"] - 1,
            untaught=untaught,
        )
    return {
        **figures,
        "prompts": len(prompts),
        "events": sent,
        "archived": held,
        "listen_s": listened,
        "build_s": built,
    }


def run(
    catalog: str, *, prompts: int, listeners: int, n: int, seed: int, root: Path
) -> dict[str, Any]:
    """The whole loop on a served node; the figures `report` prints."""
    from models import artifacts

    if not 1 <= prompts <= 200 or not 1 <= listeners <= 50 or not 1 <= n <= 30:
        raise ValueError("use 1-200 prompts, 1-50 listeners per prompt and n in 1-30")

    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        work = Path(tmp)
        current, candidate, archive = work / "current", work / "candidate", work / "archive"
        started = time.perf_counter()
        artifacts.build(catalog, current, progress=False)
        first_build = time.perf_counter() - started
        key = secrets.token_hex(16)
        redis = RedisServer(work / "redis").start()
        port = free_port()
        env = {
            **os.environ,
            "EDGE_ARTIFACTS": str(current),
            "EDGE_HOST": "127.0.0.1",
            "EDGE_PORT": str(port),
            "EDGE_REGION": "r1",
            "EDGE_L2_URL": redis.url,
            "EDGE_GLOBAL_URL": "none",
            "EDGE_ARCHIVE_DIR": str(archive),
            "EDGE_DATA_DIR": str(work / "edge"),
            "EDGE_ADMIN_KEY": key,
            "EDGE_SEMANTIC": "false",
            "EDGE_WARMUP": "false",
            "EDGE_WORKERS": "1",
        }

        def build() -> Path:
            artifacts.build(catalog, candidate, progress=False, events=[archive])
            return candidate

        try:
            with served_edge(env, port) as base:
                figures = asyncio.run(
                    _drive(
                        base,
                        key,
                        archive,
                        build,
                        {"prompts": prompts, "listeners": listeners, "n": n, "seed": seed},
                    )
                )
            manifest = artifacts.read_manifest(candidate)
        finally:
            redis.stop()
    learned = manifest.training.get("events", {})
    return {
        **figures,
        "catalog": catalog,
        "listeners": listeners,
        "n": n,
        "first_build_s": first_build,
        "learned": learned,
    }


def report(r: dict[str, Any]) -> None:
    learned = r["learned"]
    print(
        f"loop on {r['catalog']}: {r['prompts']} prompts x {r['listeners']} listeners, "
        f"{r['events']} events accepted, {r['archived']} archived "
        f"({r['listen_s']:.1f} s to listen and archive)\n"
        f"  retrain: candidate {r['candidate_version']} in {r['build_s']:.1f} s "
        f"(current {r['current_version']} in {r['first_build_s']:.1f} s) from "
        f"{learned.get('accepts')} accepts and {learned.get('rejects')} rejects over "
        f"{learned.get('prompts')} prompts\n"
        f"  shadow: mean overlap (share of the current answer the candidate keeps) "
        f"{r['shadow_overlap']:.2f} over the listeners' {r['shadow_comparisons']} prompts, "
        f"{r['untaught_overlap']:.2f} over {r['untaught_comparisons']} prompts nobody taught\n"
        f"  recall@{r['n']} against the listeners' preferred tracks, 50 % split, same run: "
        f"current {r['recall_current']:.3f}, candidate {r['recall_candidate']:.3f}, "
        f"ratio {r['ratio']:.2f} (target >= 2)\n"
        f"  promote: served {r['served_after_promote']}; "
        f"rollback: served {r['served_after_rollback']}",
        flush=True,
    )
