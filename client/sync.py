"""`PlaylistClient`: the blocking client (httpx)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from itertools import count
from types import TracebackType
from typing import Any, Unpack

import httpx

from client.core import (
    Call,
    ClientBase,
    ClientError,
    PlaylistQuery,
    RetryPolicy,
    accepted_of,
    events_call,
    final,
    playlist_call,
    playlist_of,
)
from client.models import Event, EventsAccepted, Playlist


class PlaylistClient(ClientBase):
    """Playlists and events from one edge (or the CDN in front of it).

    Requests time out after `timeout` seconds; 429, 503 and unreachable edges are retried
    per `retry` (honouring Retry-After). Playlists are revalidated with their ETag. Events
    are sent in batches of `batch`, at most `buffer` kept while the edge is away; `close`
    (or leaving the `with` block) sends what is left.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        batch: int = 100,
        buffer: int = 10_000,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        headers = {"x-api-key": api_key} if api_key else {}
        self._http = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            follow_redirects=True,  # a node's 308 to a URL's canonical form
        )
        super().__init__(retry=retry, batch=batch, buffer=buffer, rng=rng)
        self._sleep = sleep

    def _send(self, call: Call) -> httpx.Response:
        for attempt in count(1):
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = self._http.request(**self._request(call))
            except httpx.TransportError as exc:
                outcome = exc
            wait = self.retry.wait(attempt, outcome, self._rng)
            if wait is None:
                return final(outcome)
            self._sleep(wait)
        raise AssertionError("unreachable")

    def playlist(self, prompt: str = "", **query: Unpack[PlaylistQuery]) -> Playlist:
        """A playlist for a prompt and/or slots; personal (and private) when `user` is given."""
        call = playlist_call(prompt, query)
        return playlist_of(call, self._send(call), self._etags)

    def track(self, event: Event) -> None:
        """Queue an event; a full batch is sent at once."""
        if self.events.add(event):
            self._send_batch()

    def flush(self) -> list[EventsAccepted]:
        """Send every queued event; what the edge said of each batch."""
        sent = []
        while len(self.events):
            sent.append(self._send_batch())
        return sent

    def _send_batch(self) -> EventsAccepted:
        batch = self.events.take()
        try:
            return accepted_of(self._send(events_call(batch)))
        except ClientError as exc:
            self._unsent(batch, exc)
            raise

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._http.close()

    def __enter__(self) -> PlaylistClient:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> Any:
        self.close()
