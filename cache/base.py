"""The tier contract: an async store of `Entry` values keyed by strings, TTLs in seconds.

Every tier (in-process memory now, Redis and disk behind it) implements `Tier` with the same
signatures, and one contract test suite runs against all of them.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence

import msgspec


class Entry(msgspec.Struct, frozen=True, gc=False):
    """Stored bytes plus what a cache needs to judge them; times are clock seconds.

    An entry is fresh until `fresh_until`; after that it may still be served while its
    revalidation runs (until `revalidate_until`) or when computing a new one fails (until
    `stale_until`). A tier keeps it until `stale_until` at the latest.
    """

    body: bytes
    created: float
    fresh_until: float
    revalidate_until: float
    stale_until: float
    etag: str = ""
    tags: tuple[str, ...] = ()
    shared: bool = True
    """False for answers that must stay on this node (degraded fallbacks)."""

    def age(self, now: float) -> float:
        """Seconds since the entry was made (never negative)."""
        return max(0.0, now - self.created)

    @property
    def max_age(self) -> float:
        """Freshness lifetime in seconds."""
        return self.fresh_until - self.created

    def is_fresh(self, now: float) -> bool:
        return now < self.fresh_until

    def ttl(self, now: float) -> float:
        """Seconds a tier should still keep the entry."""
        return self.stale_until - now

    def softened(self, now: float) -> Entry:
        """This entry stale as of `now` (a soft purge): its revalidation window starts now,
        and it is kept no longer than before."""
        if not self.is_fresh(now):
            return self
        window = self.revalidate_until - self.fresh_until
        return msgspec.structs.replace(
            self, fresh_until=now, revalidate_until=min(self.stale_until, now + window)
        )


class _Record(msgspec.Struct, array_like=True, frozen=True):
    until: float
    entry: Entry


_encode_record = msgspec.msgpack.Encoder().encode
_decode_record = msgspec.msgpack.Decoder(_Record).decode


def pack(entry: Entry, until: float) -> bytes:
    """An entry and the clock time it expires at, as bytes for an out-of-process tier."""
    return _encode_record(_Record(until, entry))


def unpack(raw: bytes) -> tuple[float, Entry] | None:
    """The (expiry, entry) in `raw`; None for bytes that are not a packed entry."""
    try:
        record = _decode_record(raw)
    except msgspec.DecodeError:
        return None
    return record.until, record.entry


class TierState(enum.StrEnum):
    """What /readyz reports per tier."""

    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


class Tier(ABC):
    """One level of the cache. Reads that fail raise `TierUnavailable`; callers treat it
    as a miss."""

    name: str

    @abstractmethod
    async def get(self, key: str) -> Entry | None:
        """The entry under `key`, or None if absent or expired."""

    @abstractmethod
    async def set(self, key: str, entry: Entry, expires_in: float) -> None:
        """Store `entry` for `expires_in` seconds (nothing is stored if it is not positive)."""

    batch_writes: bool = False
    """True if `set_many` is one operation, ordered before any call made after it starts
    (as on a tier whose calls run in order on one thread): a write-behind queue may then
    hand it many writes at once, and a later delete or purge still comes after all of them."""

    async def set_many(self, items: Sequence[tuple[str, Entry, float]]) -> None:
        """`set` for each (key, entry, expires_in), in order. A tier that can do this as one
        operation overrides it and sets `batch_writes`."""
        for key, entry, expires_in in items:
            await self.set(key, entry, expires_in)

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Drop `key`; True if something was there."""

    @abstractmethod
    async def expires_in(self, key: str) -> float | None:
        """Seconds until `key` expires, or None if it is absent or expired."""

    @abstractmethod
    async def purge_tags(self, tags: Collection[str]) -> int:
        """Drop every entry carrying any of `tags`; how many were dropped."""

    @abstractmethod
    async def tagged(self, tags: Collection[str]) -> frozenset[str]:
        """Keys of the entries carrying any of `tags` (some may have expired meanwhile)."""

    async def soften(self, keys: Collection[str], tags: Collection[str], now: float) -> int:
        """Mark the fresh entries under `keys` or carrying `tags` stale as of `now`, so they
        are served while revalidating instead of dropped (a soft purge); how many."""
        softened = 0
        for key in frozenset(keys) | (await self.tagged(tags) if tags else frozenset()):
            entry = await self.get(key)
            if entry is None or not entry.is_fresh(now):
                continue
            stale = entry.softened(now)
            await self.set(key, stale, stale.ttl(now))
            softened += 1
        return softened

    @abstractmethod
    async def state(self) -> TierState:
        """Health as seen from this process."""

    async def close(self) -> None:  # noqa: B027 (most tiers hold nothing to release)
        """Release connections, files and background work."""
