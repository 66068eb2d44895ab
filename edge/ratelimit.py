"""Per-client rate limits, shared by every edge process of a region.

The `limits` library keeps the counters: a sliding-window counter (two counters per client
and window: cheaper than a moving-window log and without a fixed window's burst at the
boundary) in the region's Redis, so a client's budget is the same whichever edge it
reaches. When Redis does not answer within the remote timeout, limits fall back to counters
in this process (logged once per outage): a Redis outage loosens limits to per-edge ones, it
does not refuse everybody.

The client is its API key when it sent a good one; else the value of a header the CDN sets
(`EDGE_CLIENT_HEADER`); else the connecting address, or the last X-Forwarded-For hop that is
not a trusted proxy when the connecting address is one (`EDGE_TRUSTED_PROXIES`). A raw
X-Forwarded-For from anyone else is ignored: it is whatever the client wrote.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlsplit

from limits import RateLimitItem, parse
from limits.aio.storage import (
    MemoryStorage,
    RedisClusterStorage,
    RedisSentinelStorage,
    RedisStorage,
)
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from cache.redis_tier import REDIS_FAILURES
from edge.auth import ApiKey
from regional.connections import credentials

if TYPE_CHECKING:
    from edge.settings import EdgeSettings

log = logging.getLogger("edge.ratelimit")


class Verdict(NamedTuple):
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


def parse_tiers(spec: str) -> dict[str, RateLimitItem]:
    """`gold=6000/minute,free=60/minute` as limits by tier; ValueError if it cannot be read."""
    tiers = {}
    for part in filter(str.strip, spec.split(",")):
        name, sep, rate = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"not tier=rate: {part!r}")
        tiers[name.strip()] = parse(rate.strip())
    return tiers


def shared_storage(url: str, *, prefix: str, timeout: float) -> RedisStorage | None:
    """The `limits` storage for one of this project's Redis URLs (see
    `regional.connections`), with the same timeouts; None for a URL it cannot serve."""
    parts = urlsplit(url)
    options: dict[str, Any] = {
        "implementation": "redispy",
        "wrap_exceptions": True,
        "key_prefix": prefix,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    if parts.scheme in ("redis", "rediss"):
        return RedisStorage("async+" + url, **options)
    if parts.scheme == "redis+sentinel":
        service, _, db = parts.path.strip("/").partition("/")
        # Credentials go to the primary only, as `regional.connections` does (limits would
        # also send them to the sentinels, and read `pass@host` as a user name).
        hosts = parts.netloc.rpartition("@")[2]
        return RedisSentinelStorage(
            f"async+redis+sentinel://{hosts}/{service}",
            # Counters are read back only to word a refusal; a lagging replica would
            # understate them, so every call goes to the primary.
            use_replicas=False,
            sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout},
            db=int(db) if db.isdigit() else 0,
            **credentials(parts.netloc),
            **options,
        )
    if parts.scheme == "redis+cluster":
        # The sliding window's two counters share a hash tag, so one node holds both.
        return RedisClusterStorage(f"async+redis+cluster://{parts.netloc}", **options)
    return None


def parse_networks(spec: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated addresses or networks; ValueError if one cannot be read."""
    return [
        ipaddress.ip_network(net.strip(), strict=False)
        for net in filter(str.strip, spec.split(","))
    ]


class RateLimiter:
    def __init__(self, settings: EdgeSettings) -> None:
        self.default = parse(settings.rate_limit)
        self.tiers = parse_tiers(settings.rate_limit_tiers)
        self.timeout = settings.remote_timeout_ms / 1000
        self.client_header = settings.client_header.lower()
        self.trusted = parse_networks(settings.trusted_proxies)
        self._local = SlidingWindowCounterRateLimiter(MemoryStorage())
        self._shared: SlidingWindowCounterRateLimiter | None = None
        self._storage = settings.l2_url and shared_storage(
            settings.l2_url, prefix=f"ratelimit:{settings.region}", timeout=self.timeout
        )
        if self._storage:
            self._shared = SlidingWindowCounterRateLimiter(self._storage)
        self._degraded_since: float | None = None

    async def close(self) -> None:
        """Close the shared store's connections. `limits` has no close of its own, so this
        closes the redis-py clients its bridge holds (and a Sentinel's watchers)."""
        if not self._storage:
            return
        bridge = self._storage.bridge
        clients = [getattr(bridge, name, None) for name in ("storage", "storage_replica")]
        sentinel = getattr(bridge, "sentinel", None)
        if sentinel is not None:
            clients += sentinel.sentinels
        for client in clients:
            if client is not None:
                await client.aclose()

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.trusted)

    def client(
        self, key: ApiKey | None, headers: dict[str, str], peer: str | None
    ) -> tuple[str, RateLimitItem]:
        """Who is asking, and their limit."""
        if key is not None:
            return "key:" + key.name, self.tiers.get(key.tier, self.default)
        if self.client_header and headers.get(self.client_header):
            return "cdn:" + headers[self.client_header].strip(), self.default
        address = peer or "unknown"
        if self._trusted(address) and headers.get("x-forwarded-for"):
            hops = [h.strip() for h in headers["x-forwarded-for"].split(",") if h.strip()]
            for hop in reversed(hops):  # the nearest hop that is not one of our proxies
                if not self._trusted(hop):
                    address = hop
                    break
        return "ip:" + address, self.default

    async def hit(self, identity: str, item: RateLimitItem) -> Verdict:
        limiter = self._local
        if self._shared is not None:
            try:
                async with asyncio.timeout(self.timeout):
                    allowed = await self._shared.hit(item, identity)
                if self._degraded_since is not None:
                    log.warning("rate limits shared again through Redis")
                    self._degraded_since = None
                return await self._verdict(self._shared, item, identity, allowed)
            except (StorageError, TimeoutError, *REDIS_FAILURES) as exc:
                if self._degraded_since is None:
                    self._degraded_since = time.monotonic()
                    log.warning(
                        "rate-limit store unavailable; counting per process",
                        extra={"error": repr(exc)},
                    )
        allowed = await limiter.hit(item, identity)
        return await self._verdict(limiter, item, identity, allowed)

    async def _verdict(
        self,
        limiter: SlidingWindowCounterRateLimiter,
        item: RateLimitItem,
        identity: str,
        allowed: bool,
    ) -> Verdict:
        if allowed:  # one round trip for the common case; the figures only for refusals
            return Verdict(True, item.amount, -1, 0)
        stats = await limiter.get_window_stats(item, identity)
        reset = max(1, int(stats.reset_time - time.time() + 0.999))
        return Verdict(False, item.amount, stats.remaining, reset)
