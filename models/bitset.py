"""`RowSet`: a set of catalog rows packed into 64-bit words.

Catalog-wide filters combine a handful of slot masks, count what is left, and sometimes list
it. On a million rows, numpy boolean arrays cost ~40 µs an operation; packed words cost
~5 µs (one byte covers eight rows), ~15 µs to count, and list a sparse set by expanding only
its non-zero words. pyroaring would do the set algebra too, but the ranker also tests
hundreds of candidate rows at once, which needs vectorized membership: numpy words give
both with no new dependency.

Bits past the last row stay zero: every set starts from `full` or `from_mask`, and
complement clears them again, so counts never see padding.
"""

from __future__ import annotations

import numpy as np

_WORD = np.dtype("<u8")  # little-endian, so bit b of word w is row 64 * w + b


class RowSet:
    """Rows of a catalog of `size` tracks; immutable, combined with `&`, `|` and `~`."""

    __slots__ = ("size", "words")

    def __init__(self, words: np.ndarray, size: int) -> None:
        self.words = words
        self.size = size

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> RowSet:
        """The rows where a boolean mask over the whole catalog is true."""
        size = len(mask)
        packed = np.packbits(np.asarray(mask, dtype=bool), bitorder="little")
        padded = np.zeros(-(-size // 64) * 8, dtype=np.uint8)
        padded[: len(packed)] = packed
        return cls(padded.view(_WORD), size)

    @classmethod
    def full(cls, size: int) -> RowSet:
        """Every row."""
        return cls.from_mask(np.ones(size, dtype=bool))

    def __and__(self, other: RowSet) -> RowSet:
        return RowSet(self.words & other.words, self.size)

    def __or__(self, other: RowSet) -> RowSet:
        return RowSet(self.words | other.words, self.size)

    def __invert__(self) -> RowSet:
        words = ~self.words
        tail = self.size % 64
        if tail:
            words[-1] &= np.uint64((1 << tail) - 1)
        return RowSet(words, self.size)

    def __len__(self) -> int:
        return int(np.bitwise_count(self.words).sum())

    def contains(self, rows: np.ndarray) -> np.ndarray:
        """Boolean mask: which of `rows` are in the set."""
        rows = np.asarray(rows, dtype=np.int64)
        shifts = (rows & 63).astype(np.uint64)
        inside: np.ndarray = ((self.words[rows >> 6] >> shifts) & np.uint64(1)).astype(bool)
        return inside

    def rows(self) -> np.ndarray:
        """The rows in the set, ascending."""
        occupied = np.flatnonzero(self.words)
        if 2 * len(occupied) > len(self.words):
            return np.flatnonzero(self.mask())
        # Expand only the words holding rows: at 1M tracks, ~0.05 ms for 50 rows and ~0.18 ms
        # for 4,000, against ~0.25 ms to unpack every word.
        bits = np.unpackbits(self.words[occupied].view(np.uint8), bitorder="little")
        at = np.flatnonzero(bits.view(bool))
        rows: np.ndarray = occupied[at >> 6] * 64 + (at & 63)
        return rows

    def mask(self) -> np.ndarray:
        """A boolean mask over the whole catalog."""
        bits = np.unpackbits(self.words.view(np.uint8), bitorder="little", count=self.size)
        return bits.view(bool)
