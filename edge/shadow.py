"""Shadow comparisons: a share of the primary's misses is also answered by the candidate
version, off the request path, and the two playlists compared. A candidate that agrees
badly shows up here before it serves anyone.

Agreement of two playlists of length k:
- overlap@k: the share of the primary's tracks the candidate also chose;
- rank correlation: Spearman's rho over the tracks both chose (1 when they order them the
  same, -1 reversed; 0 when fewer than two are shared).
Both are kept per slot kind (see `kind`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from models.intent import Intent


def kind(intent: Intent) -> str:
    """text: a prompt that implies no slots; slots: slots alone; mixed: a prompt with slots
    (given, or read from its words)."""
    text, slots = bool(intent.text.strip()), not intent.slots.is_empty()
    return "mixed" if text and slots else "slots" if slots else "text"


def overlap(served: Sequence[str], other: Sequence[str]) -> float:
    if not served:
        return 1.0 if not other else 0.0
    return len(set(served) & set(other)) / len(served)


def rank_correlation(served: Sequence[str], other: Sequence[str]) -> float:
    """Spearman's rho of the shared tracks' positions in the two lists."""
    position = {track: rank for rank, track in enumerate(other)}
    shared = [(rank, position[track]) for rank, track in enumerate(served) if track in position]
    n = len(shared)
    if n < 2:
        return 0.0
    # Ranks among the shared tracks only, so both lists are permutations of 0..n-1.
    by_other = {pair: rank for rank, pair in enumerate(sorted(shared, key=lambda p: p[1]))}
    d2 = sum((rank - by_other[pair]) ** 2 for rank, pair in enumerate(shared))
    return 1 - 6 * d2 / (n * (n * n - 1))


@dataclass
class Agreement:
    """Running agreement figures of one slot kind."""

    count: int = 0
    overlap_sum: float = 0.0
    correlation_sum: float = 0.0
    overlap_min: float = 1.0
    buckets: list[int] = field(default_factory=lambda: [0] * 10)
    """How many comparisons had overlap in [0, 0.1), [0.1, 0.2), ... [0.9, 1]."""

    def add(self, overlap_: float, correlation: float) -> None:
        self.count += 1
        self.overlap_sum += overlap_
        self.correlation_sum += correlation
        self.overlap_min = min(self.overlap_min, overlap_)
        self.buckets[min(9, int(overlap_ * 10))] += 1

    def report(self) -> dict[str, object]:
        return {
            "count": self.count,
            "overlap_mean": round(self.overlap_sum / self.count, 4) if self.count else None,
            "overlap_min": round(self.overlap_min, 4) if self.count else None,
            "rank_correlation_mean": (
                round(self.correlation_sum / self.count, 4) if self.count else None
            ),
            "overlap_histogram": self.buckets,
        }
