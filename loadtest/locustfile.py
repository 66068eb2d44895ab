"""Locust scenarios for an edge node (or a region behind a balancer): the real traffic mix.

Users (weights from LOADTEST_WEIGHTS, e.g. "cdn=2,listener=5,picker=2,personal=1,events=1,sdk=1"):
  CdnClient   repeats the most popular GETs and revalidates with If-None-Match (304s)
  Listener    free-text prompts drawn by Zipf popularity, 30 % in another wording
  Picker      structured-slot GETs (mood, genre, activity, tempo, exclude)
  Personal    POSTs with a user token (private, personalised answers)
  EventSender a listener's app: asks for a playlist, then reports what was played, skipped,
              completed or saved in batches to POST /v1/events (some batches re-sent)
  SdkListener the same app built on the client SDK (client/): its retries, ETag
              revalidation and event batching under load (reported as "SDK ..." requests)
The corpus comes from LOADTEST_CORPUS (`python -m loadtest corpus`). Each response's X-Cache
is counted per second into LOADTEST_TIERS_CSV, and every response time into the second it
ended in, whose percentiles go to LOADTEST_LATENCY_CSV (`loadtest.intervals`: per second, not
cumulative like locust's own history). LOADTEST_SHAPE=step|spike swaps the constant
user count for a step or spike profile (LOADTEST_USERS peak, LOADTEST_DURATION seconds).
"""

from __future__ import annotations

import csv
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from locust import HttpUser, LoadTestShape, User, between, events, task

from client import ClientError, Event, Playlist, PlaylistClient
from loadtest import corpus as corpus_file
from loadtest.intervals import SPIKE_WINDOW, IntervalLatencies

_ENTRIES = corpus_file.read(Path(os.environ.get("LOADTEST_CORPUS", "bench-out/corpus.jsonl")))
_WEIGHTS = [e["weight"] for e in _ENTRIES]
_TEXT = [e for e in _ENTRIES if e["kind"] == "text"]
_TEXT_WEIGHTS = [e["weight"] for e in _TEXT]
_SLOTS = [e for e in _ENTRIES if e["kind"] == "slots"] or _ENTRIES
_POPULAR = _ENTRIES[:20]
_RNG = random.Random(int(os.environ.get("LOADTEST_SEED", "0")))


def _weights() -> dict[str, int]:
    spec = os.environ.get("LOADTEST_WEIGHTS", "cdn=2,listener=5,picker=2,personal=1,events=1,sdk=1")
    pairs = (item.split("=") for item in spec.split(",") if item.strip())
    return {name.strip(): int(value) for name, value in pairs}


_WEIGHT = _weights()

# -- X-Cache per second -------------------------------------------------------------------

_TIERS: Counter[tuple[int, str]] = Counter()
_LATENCIES = IntervalLatencies(time.time())


@events.test_start.add_listener
def _start_clock(**_kwargs: Any) -> None:
    global _LATENCIES
    _LATENCIES = IntervalLatencies(time.time())


@events.request.add_listener
def _count_tier(
    response: Any = None,
    exception: Any = None,
    context: Any = None,
    response_time: float | None = None,
    **_kwargs: Any,
) -> None:
    now = time.time()
    if response_time is not None:
        _LATENCIES.add(now, response_time)
    if exception is None and context and "tier" in context:  # an SDK call
        tier = context["tier"]
    elif response is None or exception is not None:
        tier = "ERROR"
    else:
        tier = response.headers.get("x-cache") or f"HTTP {response.status_code}"
        if response.status_code == 304:
            tier = "304"
    _TIERS[int(now), tier] += 1


@events.quitting.add_listener
def _write_tiers(**_kwargs: Any) -> None:
    latency = os.environ.get("LOADTEST_LATENCY_CSV")
    if latency:
        _LATENCIES.write(Path(latency))
    path = os.environ.get("LOADTEST_TIERS_CSV")
    if not path:
        return
    with open(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["second", "tier", "count"])
        for (second, tier), count in sorted(_TIERS.items()):
            writer.writerow([second, tier, count])


# -- users --------------------------------------------------------------------------------


class CdnClient(HttpUser):
    """A CDN edge refreshing popular answers: conditional GETs that should mostly be 304."""

    weight = _WEIGHT.get("cdn", 0)
    wait_time = between(0.01, 0.05)

    def on_start(self) -> None:
        self.etags: dict[str, str] = {}

    @task
    def revalidate(self) -> None:
        url = "/v1/playlists?" + corpus_file.query(_RNG.choice(_POPULAR))
        headers = {"if-none-match": self.etags[url]} if url in self.etags else {}
        with self.client.get(url, headers=headers, name="GET cdn", catch_response=True) as r:
            if r.status_code == 200 and "etag" in r.headers:
                self.etags[url] = r.headers["etag"]
            if r.status_code in (200, 304):
                r.success()


class Listener(HttpUser):
    """A listener typing prompts: popular ones often, a long tail sometimes, reworded."""

    weight = _WEIGHT.get("listener", 0)
    wait_time = between(0.01, 0.05)

    @task
    def prompt(self) -> None:
        entry = _RNG.choices(_TEXT, _TEXT_WEIGHTS)[0]
        variant = None
        if entry["variants"] and _RNG.random() < 0.3:
            variant = _RNG.randrange(len(entry["variants"]))
        self.client.get(
            "/v1/playlists?" + corpus_file.query(entry, variant=variant), name="GET text"
        )


class Picker(HttpUser):
    """A listener picking mood, genre and activity from menus."""

    weight = _WEIGHT.get("picker", 0)
    wait_time = between(0.01, 0.05)

    @task
    def pick(self) -> None:
        entry = _RNG.choice(_SLOTS)
        self.client.get("/v1/playlists?" + corpus_file.query(entry), name="GET slots")


class Personal(HttpUser):
    """A signed-in listener: POSTs with a user token, answered privately."""

    weight = _WEIGHT.get("personal", 0)
    wait_time = between(0.01, 0.05)

    def on_start(self) -> None:
        self.user_token = f"user-{_RNG.randrange(10_000)}"

    @task
    def post(self) -> None:
        entry = _RNG.choices(_TEXT, _TEXT_WEIGHTS)[0]
        body = {"schema_version": 1, "prompt": entry["prompt"], "n": 30, "user": self.user_token}
        self.client.post("/v1/playlists", json=body, name="POST personal")


class EventSender(HttpUser):
    """A listener's app: fetches a playlist, plays through part of it, reports what happened."""

    weight = _WEIGHT.get("events", 0)
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.user_token = f"user-{_RNG.randrange(10_000)}"
        self.sent = 0

    @task
    def listen(self) -> None:
        entry = _RNG.choices(_TEXT, _TEXT_WEIGHTS)[0]
        answer = self.client.get("/v1/playlists?" + corpus_file.query(entry), name="GET text")
        if answer.status_code != 200:
            return
        doc = answer.json()
        batch = []
        for position, track in enumerate(doc["tracks"][: _RNG.randrange(3, 12)]):
            roll = _RNG.random()
            kind, dwell = (
                ("skip", _RNG.randrange(1_000, 29_000))
                if roll < 0.3
                else ("complete", 180_000)
                if roll < 0.9
                else ("save", 60_000)
            )
            self.sent += 1
            batch.append(
                {
                    "event_id": f"{self.user_token}-{self.sent:08d}-{_RNG.randrange(1 << 30)}",
                    "type": kind,
                    "playlist": doc["fingerprint"],
                    "prompt_key": doc["prompt_key"],
                    "track_id": track["id"],
                    "position": position,
                    "dwell_ms": dwell,
                    "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "user": self.user_token,
                }
            )
        self.client.post("/v1/events", json={"events": batch}, name="POST events")
        if _RNG.random() < 0.05:  # an app retrying after a lost response: accepted once
            self.client.post("/v1/events", json={"events": batch}, name="POST events (resend)")


class SdkListener(User):
    """EventSender's listener on the client SDK: a playlist (revalidated with its ETag when
    asked again), then events about it that the SDK batches and retries."""

    weight = _WEIGHT.get("sdk", 0)
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.user_token = f"sdk-user-{_RNG.randrange(10_000)}"
        self.edge = PlaylistClient(self.host or "", batch=20, rng=random.Random(_RNG.random()))
        self.sent = 0

    def on_stop(self) -> None:
        self._timed("SDK events close", self._close)

    def _close(self) -> str:
        self.edge.close()
        return "sent"

    def _timed(self, name: str, call: Any) -> Any:
        started = time.perf_counter()
        result, error = None, None
        try:
            result = call()
        except ClientError as exc:
            error = exc
        tier = "EVENTS"
        if isinstance(result, Playlist):  # named as the X-Cache header names it
            tier = result.cache.tier
            tier = "HIT-" + tier if tier in ("L1", "L2", "GLOBAL") else tier
            tier = "304" if result.not_modified else tier
        self.environment.events.request.fire(
            request_type="SDK",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            response=None,
            exception=error,
            context={"tier": tier},
        )
        return result

    @task
    def listen(self) -> None:
        entry = _RNG.choices(_TEXT, _TEXT_WEIGHTS)[0]
        playlist = self._timed("SDK playlist", lambda: self.edge.playlist(entry["prompt"], n=30))
        if playlist is None:
            return
        for position in range(min(len(playlist.tracks), _RNG.randrange(3, 12))):
            self.sent += 1
            skipped = _RNG.random() < 0.3
            event = Event.about(
                playlist,
                position,
                "skip" if skipped else "complete",
                user=self.user_token,
                event_id=f"{self.user_token}-{self.sent:08d}-{_RNG.randrange(1 << 30)}",
                dwell_ms=5_000 if skipped else 180_000,
            )
            if len(self.edge.events) + 1 >= self.edge.events.batch:  # this one sends a batch
                self._timed("SDK events batch", lambda e=event: self._track(e))
            else:
                self.edge.track(event)

    def _track(self, event: Event) -> str:
        self.edge.track(event)
        return "sent"


# -- load shapes --------------------------------------------------------------------------

_SHAPE = os.environ.get("LOADTEST_SHAPE", "")
_PEAK = int(os.environ.get("LOADTEST_USERS", "20"))
_DURATION = float(os.environ.get("LOADTEST_DURATION", "60"))

if _SHAPE == "step":

    class StepShape(LoadTestShape):
        """Four equal steps up to the peak user count, each a quarter of the run."""

        def tick(self) -> tuple[int, float] | None:
            elapsed = self.get_run_time()
            if elapsed >= _DURATION:
                return None
            step = min(3, int(elapsed // (_DURATION / 4)))
            return max(1, _PEAK * (step + 1) // 4), float(_PEAK)

elif _SHAPE == "spike":

    class SpikeShape(LoadTestShape):
        """A quarter of the peak, the full peak for the middle fifth of the run, then back."""

        def tick(self) -> tuple[int, float] | None:
            elapsed = self.get_run_time()
            if elapsed >= _DURATION:
                return None
            spiking = SPIKE_WINDOW[0] * _DURATION <= elapsed < SPIKE_WINDOW[1] * _DURATION
            return (_PEAK if spiking else max(1, _PEAK // 4)), float(_PEAK)
