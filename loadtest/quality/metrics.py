"""The RecSys Challenge 2018 metrics, at track level, and what kind of title a prompt is."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

from models.intent import Slots

DEPTH = 100
"""Tracks every method is asked for (the node's longest playlist)."""
KINDS = ("artist", "genre", "mood", "activity", "era", "other")


def hit_vector(ranking: Sequence[str], truth: Collection[str], depth: int) -> np.ndarray:
    """1.0 where ranking[:depth] holds a relevant track for the first time, zero-padded."""
    hits, seen = np.zeros(depth), set()
    for position, track in enumerate(ranking[:depth]):
        if track in truth and track not in seen:
            hits[position] = 1.0
            seen.add(track)
    return hits


def ndcg(hits: np.ndarray, relevant: int, n: int) -> float:
    discounts = 1.0 / np.log2(np.arange(2, n + 2))
    ideal = float(discounts[: min(relevant, n)].sum())
    return float(hits[:n] @ discounts) / ideal


def recall_at(ranking: Sequence[str], truth: Collection[str], n: int) -> float:
    """|G ∩ R[:n]| / |G|."""
    return float(hit_vector(ranking, truth, n).sum()) / len(truth)


def r_precision(ranking: Sequence[str], truth: Collection[str]) -> float:
    """|G ∩ R[:|G|]| / |G|."""
    return recall_at(ranking, truth, len(truth))


def ndcg_at(ranking: Sequence[str], truth: Collection[str], n: int) -> float:
    """NDCG@n with binary relevance (RecSys Challenge 2018)."""
    return ndcg(hit_vector(ranking, truth, n), len(truth), n)


def title_kind(slots: Slots | None) -> str:
    """What a title names first: an artist, genre, mood, activity, era, or nothing of these."""
    if slots is None:
        return "other"
    for kind, value in (
        ("artist", slots.artists),
        ("genre", slots.genres),
        ("mood", slots.moods),
        ("activity", slots.activities),
        ("era", slots.era),
    ):
        if value:
            return kind
    return "other"
