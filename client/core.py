"""What the sync and async clients share: requests as data, the retry policy, the ETag
store, the event buffer and response decoding. Only the sending differs between them."""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

import httpx
import msgspec

from client.models import CacheInfo, Event, EventsAccepted, Playlist, Problem

SCHEMA_VERSION = 1
T = TypeVar("T")
RETRIED_STATUSES = frozenset({408, 429, 503})
"""Answers that say "later": the body came too slowly, over the rate limit, overloaded or
not ready yet."""


class ClientError(Exception):
    """Base of what the clients raise."""


class ApiError(ClientError):
    """The edge refused the request (a 4xx or 5xx after any retries); `problem` says why."""

    def __init__(self, status: int, problem: Problem) -> None:
        super().__init__(f"{status} {problem.title}: {problem.detail}")
        self.status = status
        self.problem = problem


class Unavailable(ClientError):
    """The edge could not be reached (connect, read or write failed) after every retry."""


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of 429, 503 and transport failures, with full-jitter exponential backoff;
    a Retry-After the server sends is honoured (up to `max_retry_after` seconds)."""

    attempts: int = 4
    """Tries in all, the first included."""
    base: float = 0.1
    cap: float = 5.0
    max_retry_after: float = 30.0

    def wait(
        self, attempt: int, outcome: httpx.Response | httpx.TransportError, rng: random.Random
    ) -> float | None:
        """Seconds to wait before trying again after `outcome` of try number `attempt`;
        None when `outcome` is final (a success, an error not worth repeating, or the last
        try)."""
        if attempt >= self.attempts:
            return None
        if isinstance(outcome, httpx.TransportError):
            return self.delay(attempt, None, rng)
        if outcome.status_code in RETRIED_STATUSES:
            return self.delay(attempt, outcome.headers.get("retry-after"), rng)
        return None

    def delay(self, retry: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds to wait before retry number `retry` (1, 2, ...)."""
        if retry_after is not None:
            try:
                return min(max(0.0, float(retry_after)), self.max_retry_after)
            except ValueError:
                pass  # an HTTP date: fall back to backoff
        return rng.uniform(0, min(self.cap, self.base * 2**retry))


@dataclass(frozen=True)
class Call:
    """One request, described before it is sent."""

    method: str
    path: str
    params: tuple[tuple[str, str], ...] = ()
    json: Any = None
    cacheable: bool = False
    """A GET whose answer is kept with its ETag and revalidated next time."""

    @property
    def key(self) -> str:
        return self.method + " " + str(httpx.URL(self.path, params=self.params))


class PlaylistQuery(TypedDict, total=False):
    """What a playlist can be asked for beside its prompt."""

    n: int
    moods: Sequence[str]
    activities: Sequence[str]
    genres: Sequence[str]
    exclude: Sequence[str]
    tempo: str
    explicit: bool
    user: str
    """Personal (and private) answers for this listener token: a POST instead of a GET."""


def playlist_call(prompt: str, query: PlaylistQuery) -> Call:
    """A GET (shared, CDN-cacheable) without `user`; a POST (personal, private) with one."""
    moods, activities = query.get("moods", ()), query.get("activities", ())
    genres, exclude = query.get("genres", ()), query.get("exclude", ())
    n, explicit = query.get("n"), query.get("explicit")
    user = query.get("user")
    if user is None:
        params: list[tuple[str, str]] = [("q", prompt)] if prompt else []
        params += [("mood", m) for m in moods] + [("activity", a) for a in activities]
        params += [("genre", g) for g in genres] + [("exclude", e) for e in exclude]
        if "tempo" in query:
            params.append(("tempo", query["tempo"]))
        if explicit is not None:
            params.append(("explicit", "true" if explicit else "false"))
        if n is not None:
            params.append(("n", str(n)))
        return Call("GET", "/v1/playlists", tuple(params), cacheable=True)
    slots: dict[str, Any] = {
        "moods": list(moods),
        "activities": list(activities),
        "genres": list(genres),
        "exclude_genres": list(exclude),
    }
    if explicit is not None:
        slots["explicit"] = explicit
    body = {"schema_version": SCHEMA_VERSION, "prompt": prompt, "slots": slots, "user": user}
    if n is not None:
        body["n"] = n
    return Call("POST", "/v1/playlists", json=body)


def events_call(events: Sequence[Event]) -> Call:
    return Call("POST", "/v1/events", json={"events": [msgspec.to_builtins(e) for e in events]})


class ETags:
    """The last answer to each cacheable request with its ETag, a bounded LRU."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._kept: OrderedDict[str, Playlist] = OrderedDict()

    def headers(self, call: Call) -> dict[str, str]:
        kept = self._kept.get(call.key) if call.cacheable else None
        return {"if-none-match": kept.etag} if kept is not None and kept.etag else {}

    def answer(self, call: Call, response: httpx.Response) -> Playlist:
        """The playlist a 200 or 304 stands for (a 304 gives back the kept copy)."""
        if response.status_code == 304 and call.key in self._kept:
            self._kept.move_to_end(call.key)
            return msgspec.structs.replace(self._kept[call.key], not_modified=True)
        playlist = _decoded(response, Playlist)
        age = response.headers.get("age", "0")
        cache = CacheInfo(
            tier=response.headers.get("x-cache", "").removeprefix("HIT-"),
            age=int(age) if age.isdigit() else 0,
        )
        playlist = msgspec.structs.replace(
            playlist, etag=response.headers.get("etag", ""), cache=cache
        )
        if call.cacheable and playlist.etag and not playlist.degraded:
            self._kept[call.key] = playlist
            self._kept.move_to_end(call.key)
            while len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return playlist


def _decoded(response: httpx.Response, type_: type[T]) -> T:
    """The body as `type_`; a body that is not one (a proxy's page, say) is an ApiError."""
    try:
        return msgspec.json.decode(response.content, type=type_)
    except msgspec.DecodeError as exc:
        detail = f"unreadable {type_.__name__}: {exc}"
        raise ApiError(response.status_code, Problem(title="Bad answer", detail=detail)) from exc


def problem(response: httpx.Response) -> ApiError:
    try:
        doc = msgspec.json.decode(response.content, type=Problem)
    except msgspec.DecodeError:
        doc = Problem(title=response.reason_phrase, status=response.status_code)
    return ApiError(response.status_code, doc)


def accepted(response: httpx.Response) -> EventsAccepted:
    return _decoded(response, EventsAccepted)


class EventBuffer:
    """Events waiting to be sent, at most `limit`; beyond it the oldest are dropped (and
    counted), so a long outage costs bounded memory."""

    def __init__(self, *, batch: int, limit: int) -> None:
        if not 0 < batch <= limit:
            raise ValueError("need 0 < batch <= limit")
        self.batch = batch
        self.limit = limit
        self.dropped = 0
        self._events: list[Event] = []

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event: Event) -> bool:
        """Keep `event`; True when a full batch is waiting."""
        self._events.append(event)
        if len(self._events) > self.limit:
            self.dropped += len(self._events) - self.limit
            del self._events[: len(self._events) - self.limit]
        return len(self._events) >= self.batch

    def take(self) -> list[Event]:
        """The next batch (oldest first); give it back with `put_back` if it was not sent."""
        batch, self._events = self._events[: self.batch], self._events[self.batch :]
        return batch

    def put_back(self, batch: list[Event]) -> None:
        self._events[:0] = batch
        if len(self._events) > self.limit:
            self.dropped += len(self._events) - self.limit
            del self._events[: len(self._events) - self.limit]


def final(outcome: httpx.Response | httpx.TransportError) -> httpx.Response:
    """The response to act on; Unavailable if the last try could not reach the edge."""
    if isinstance(outcome, httpx.TransportError):
        raise Unavailable(f"the edge did not answer: {outcome!r}") from outcome
    return outcome


def playlist_of(call: Call, response: httpx.Response, etags: ETags) -> Playlist:
    if response.status_code in (200, 304):
        return etags.answer(call, response)
    raise problem(response)


def accepted_of(response: httpx.Response) -> EventsAccepted:
    if response.status_code == 200:
        return accepted(response)
    raise problem(response)


class ClientBase:
    """What both clients hold: the retry policy, the event buffer, the kept ETags."""

    def __init__(
        self, *, retry: RetryPolicy | None, batch: int, buffer: int, rng: random.Random | None
    ) -> None:
        self.retry = retry or RetryPolicy()
        self.events = EventBuffer(batch=batch, limit=buffer)
        self._etags = ETags()
        self._rng = rng or random.Random()

    def _request(self, call: Call) -> dict[str, Any]:
        """httpx `request` arguments for `call` (with If-None-Match when an ETag is kept)."""
        return {
            "method": call.method,
            "url": call.path,
            "params": call.params or None,
            "json": call.json,
            "headers": self._etags.headers(call),
        }

    def _unsent(self, batch: list[Event], error: ClientError) -> None:
        """Keep a batch that could not go, unless the edge refused it as invalid (sending it
        again would not help)."""
        if (
            isinstance(error, ApiError)
            and error.status < 500
            and error.status not in RETRIED_STATUSES
        ):
            return
        self.events.put_back(batch)
