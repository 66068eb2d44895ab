"""`Popularity`: which keys this node serves most, in fixed memory.

Counting uses Apache DataSketches' frequent-items sketch (a Misra-Gries heavy-hitters
summary with error bounds): a few thousand counters whatever the number of distinct
prompts. Each key's request description (opaque bytes from the caller) is kept for the
keys counted since the last drain, in a bounded LRU, so a warmer elsewhere can rebuild an
answer it does not find in any tier.
"""

from __future__ import annotations

from typing import NamedTuple

import datasketches
from cachetools import LRUCache

_NO_FALSE_NEGATIVES = datasketches.frequent_items_error_type.NO_FALSE_NEGATIVES


class Counted(NamedTuple):
    key: str
    hits: int
    spec: bytes


class Popularity:
    def __init__(self, lg_max_counters: int = 10, specs: int = 4096) -> None:
        self._lg = lg_max_counters
        self._sketch = datasketches.frequent_strings_sketch(lg_max_counters)
        self._specs: LRUCache[str, bytes] = LRUCache(maxsize=specs)

    def hit(self, key: str, spec: bytes | None = None) -> None:
        """Count one answer for `key`; `spec` describes the request (kept once per key)."""
        self._sketch.update(key, 1)
        if spec is not None:
            self._specs[key] = spec
        elif key in self._specs:
            self._specs[key]

    def top(self, k: int) -> list[Counted]:
        """The (at most) k most counted keys whose request is known, most counted first."""
        found = []
        for key, estimate, _lower, _upper in self._sketch.get_frequent_items(_NO_FALSE_NEGATIVES):
            spec = self._specs.get(key)
            if spec is not None:
                found.append(Counted(key, int(estimate), spec))
            if len(found) == k:
                break
        return found

    def drain(self, k: int) -> list[Counted]:
        """`top(k)`, then start counting afresh (the counts move to a shared total)."""
        found = self.top(k)
        self._sketch = datasketches.frequent_strings_sketch(self._lg)
        return found
