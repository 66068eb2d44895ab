"""`MemoryTier`: the in-process L1, bounded by the bytes it holds.

The policy comes from cachetools' `TLRUCache`: it bounds the total size through `getsizeof`,
expires each item at its own time through `ttu`, and reads time from an injected `timer`,
so tests can freeze the clock. theine's W-TinyLFU admits better under scans, but it bounds
entries by count, not bytes, and reads its own clock; a byte bound matters more here because
answers vary from ~300 bytes to ~20 kB with the playlist length.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from cachetools import TLRUCache

from cache.base import Entry, Tier, TierState

Clock = Callable[[], float]

# Rough per-item bookkeeping (dict slot, linked-list node, tuple, Entry object) so that many
# tiny entries cannot exceed the bound much.
_OVERHEAD = 240


def _size(slot: tuple[Entry, float]) -> int:
    return len(slot[0].body) + _OVERHEAD


def _expiry(_key: str, slot: tuple[Entry, float], _now: float) -> float:
    return slot[1]


class MemoryTier(Tier):
    """L1: entries live in this process only and are evicted least recently used first."""

    def __init__(
        self,
        max_bytes: int,
        *,
        clock: Clock = time.time,
        name: str = "l1",
        max_ttl: float | None = None,
    ) -> None:
        self.name = name
        self.max_bytes = max_bytes
        self.max_ttl = max_ttl
        """Longest any entry is kept, whatever lifetime it is given (None: no cap)."""
        self._clock = clock
        self._data: TLRUCache[str, tuple[Entry, float]] = TLRUCache(
            maxsize=max_bytes, ttu=_expiry, timer=clock, getsizeof=_size
        )

    def peek(self, key: str) -> Entry | None:
        """Synchronous `get` for the event loop's hit path (no await, no I/O)."""
        slot = self._data.get(key)
        return None if slot is None else slot[0]

    def put(self, key: str, entry: Entry, expires_in: float) -> None:
        """Synchronous `set`; an entry larger than the whole tier is not kept."""
        if expires_in <= 0 or _size((entry, 0.0)) > self.max_bytes:
            self._data.pop(key, None)
            return
        if self.max_ttl is not None:
            expires_in = min(expires_in, self.max_ttl)
        self._data[key] = (entry, self._clock() + expires_in)

    async def get(self, key: str) -> Entry | None:
        return self.peek(key)

    async def set(self, key: str, entry: Entry, expires_in: float) -> None:
        self.put(key, entry, expires_in)

    async def delete(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    async def expires_in(self, key: str) -> float | None:
        slot = self._data.get(key)
        return None if slot is None else slot[1] - self._clock()

    async def purge_tags(self, tags: Collection[str]) -> int:
        """A scan of every entry: purges are rare, and an index would cost every write."""
        wanted = set(tags)
        items = list(self._data.items())
        doomed = [key for key, (entry, _) in items if wanted.intersection(entry.tags)]
        for key in doomed:
            self._data.pop(key, None)
        return len(doomed)

    async def tagged(self, tags: Collection[str]) -> frozenset[str]:
        wanted = set(tags)
        items = list(self._data.items())
        return frozenset(key for key, (entry, _) in items if wanted.intersection(entry.tags))

    async def state(self) -> TierState:
        return TierState.OK

    def clear(self) -> None:
        """Drop everything (artifact swaps, purges of the whole node)."""
        self._data.clear()

    @property
    def bytes_used(self) -> int:
        return int(self._data.currsize)

    def __len__(self) -> int:
        return len(self._data)
