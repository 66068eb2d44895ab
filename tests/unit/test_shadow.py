"""Agreement of two playlists, as the shadow comparisons measure it."""

from __future__ import annotations

import pytest

from edge.shadow import Agreement, kind, overlap, rank_correlation
from models.intent import Intent, Slots


def test_overlap_is_the_share_of_served_tracks_the_other_chose() -> None:
    assert overlap(["a", "b", "c", "d"], ["d", "c", "x", "y"]) == 0.5
    assert overlap(["a"], ["b"]) == 0.0
    assert overlap([], []) == 1.0


def test_rank_correlation_follows_the_order_of_shared_tracks() -> None:
    assert rank_correlation(["a", "b", "c", "d"], ["a", "b", "c", "d"]) == 1.0
    assert rank_correlation(["a", "b", "c", "d"], ["d", "c", "b", "a"]) == -1.0
    assert rank_correlation(["a", "b", "c"], ["x", "a", "y", "c", "b"]) == pytest.approx(0.5)
    assert rank_correlation(["a", "b"], ["a", "z"]) == 0.0  # one shared track says nothing


def test_agreement_keeps_counts_means_and_a_histogram() -> None:
    agreement = Agreement()
    for agreed, correlation in ((1.0, 1.0), (0.55, 0.2), (0.05, -1.0)):
        agreement.add(agreed, correlation)
    report = agreement.report()
    assert report["count"] == 3
    assert report["overlap_mean"] == pytest.approx(0.5333, abs=1e-4)
    assert report["overlap_min"] == 0.05
    assert report["rank_correlation_mean"] == pytest.approx(0.0667, abs=1e-4)
    assert report["overlap_histogram"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 1]


def test_slot_kinds() -> None:
    text = Intent(text="jazz", query_text="jazz", slots=Slots())
    slots = Intent(text="", query_text="calm music", slots=Slots(moods=("calm",)))
    mixed = Intent(text="jazz", query_text="jazz", slots=Slots(moods=("calm",)))
    assert [kind(i) for i in (text, slots, mixed)] == ["text", "slots", "mixed"]
