"""`CdnPurger`: purges that reach the shared caches in front of the node.

Varnish with varnish-modules' xkey indexes every object by the words of its `Surrogate-Key`
header (deploy/varnish/default.vcl copies it to `xkey`); a `PURGE` request with an `xkey`
header drops the objects carrying any of its words, one with `xkey-softpurge` marks them
stale (served in grace while refetched). Each target gets the first attempt at once, within
a second; a failed one (no connection, timeout, 5xx) is retried in the background with a
capped exponential backoff. nginx's open-source cache has no purge by tag (the cache-purge
module purges one URL), so nginx is kept apart by short shared lifetimes instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

import httpx
from prometheus_client import Counter

from cache.tasks import cancel_and_wait

log = logging.getLogger("edge.cdn")

Sleep = Callable[[float], Awaitable[None]]
MAX_TAGS_PER_REQUEST = 64
"""Tags per PURGE, so that a purge of many tracks stays within header size limits."""


class CdnPurger:
    """Sends each purge to every configured shared cache, retried with backoff."""

    def __init__(
        self,
        targets: Sequence[str],
        counter: Counter,
        *,
        retries: int = 4,
        timeout: float = 1.0,
        backoff: float = 0.25,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.targets = tuple(t.rstrip("/") for t in targets)
        self._counter = counter
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._rng = rng or random.Random(0)
        self._client = httpx.AsyncClient(timeout=timeout, transport=transport)
        self._retrying: set[asyncio.Task[None]] = set()

    @staticmethod
    def parse(urls: str) -> list[str]:
        """The targets of an `EDGE_CDN_PURGE_URLS` value."""
        return [url.strip() for url in urls.split(",") if url.strip()]

    async def purge(self, tags: Sequence[str], *, soft: bool = False) -> dict[str, str]:
        """Send the purge to every target; per target `ok`, or `retrying` (in the
        background) or `failed` (refused: a 4xx)."""
        if not tags or not self.targets:
            return {}
        header = "xkey-softpurge" if soft else "xkey"
        groups = [
            " ".join(tags[i : i + MAX_TAGS_PER_REQUEST])
            for i in range(0, len(tags), MAX_TAGS_PER_REQUEST)
        ]
        outcomes = await asyncio.gather(
            *(self._send(target, header, groups) for target in self.targets)
        )
        result = {}
        for target, (outcome, pending) in zip(self.targets, outcomes, strict=True):
            result[target] = outcome
            if pending:
                task = asyncio.create_task(self._retry(target, header, pending))
                self._retrying.add(task)
                task.add_done_callback(self._retrying.discard)
        return result

    async def _send(self, target: str, header: str, groups: list[str]) -> tuple[str, list[str]]:
        """One attempt per group: the outcome, and the groups to try again."""
        pending, refused = [], False
        for group in groups:
            verdict = await self._attempt(target, header, group)
            if verdict == "retry":
                pending.append(group)
            refused |= verdict == "failed"
        if pending:
            self._counter.labels(target, "retried").inc()
            return "retrying", pending
        outcome = "failed" if refused else "ok"
        self._counter.labels(target, outcome).inc()
        return outcome, []

    async def _attempt(self, target: str, header: str, group: str) -> str:
        try:
            response = await self._client.request("PURGE", target + "/", headers={header: group})
        except httpx.HTTPError as exc:
            log.warning("CDN purge not delivered", extra={"target": target, "error": repr(exc)})
            return "retry"
        if response.status_code >= 500:
            return "retry"
        if response.status_code >= 400:
            log.error(
                "CDN refused a purge",
                extra={"target": target, "status": response.status_code},
            )
            return "failed"
        return "ok"

    async def _retry(self, target: str, header: str, groups: list[str]) -> None:
        for attempt in range(self.retries):
            delay = min(8.0, self.backoff * 2**attempt)
            await self._sleep(delay * self._rng.uniform(0.5, 1.0))
            verdicts = [(g, await self._attempt(target, header, g)) for g in groups]
            groups = [g for g, verdict in verdicts if verdict == "retry"]
            if not groups:
                self._counter.labels(target, "ok").inc()
                return
        self._counter.labels(target, "failed").inc()
        log.error("CDN purge failed after retries", extra={"target": target, "tags": groups})

    async def drain(self) -> None:
        """Wait for the retries still running (tests)."""
        if self._retrying:
            await asyncio.gather(*list(self._retrying), return_exceptions=True)

    async def close(self) -> None:
        await asyncio.gather(*(cancel_and_wait(task) for task in list(self._retrying)))
        await self._client.aclose()
