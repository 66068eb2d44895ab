"""What a correct semantic hit is, the bound, per-bucket thresholds, and word conflicts."""

from __future__ import annotations

import numpy as np
import pytest

from models.generator import PlaylistGenerator
from models.intent import IntentParser, Slots
from models.semantic import (
    NEVER,
    Judged,
    Pair,
    bucket_of,
    calibrate,
    choose,
    conflicts,
    correct,
    judge,
    served,
    template_pairs,
    upper_bound,
)


def test_upper_bound_is_clopper_pearsons_one_sided() -> None:
    # With no errors the bound solves (1 - p)^n = 1 - confidence: the "rule of three".
    assert upper_bound(0, 299) == pytest.approx(1 - 0.05 ** (1 / 299), rel=1e-6)
    assert upper_bound(0, 299) < 0.01 < upper_bound(0, 298)
    assert upper_bound(3, 100) > 0.03  # above the observed rate
    assert upper_bound(0, 0) == 1.0
    assert upper_bound(5, 5) == 1.0


def test_choose_takes_the_lowest_threshold_the_bound_allows() -> None:
    rng = np.random.default_rng(0)
    sims = np.concatenate([rng.uniform(0.9, 1.0, 400), rng.uniform(0.5, 0.8, 200)])
    right = np.concatenate([np.ones(400, bool), rng.random(200) < 0.5])
    threshold, bound, count = choose(sims, right, 0.01, 0.95)
    assert 0.79 < threshold <= 0.9  # the first grid step above every mixed pair
    assert bound <= 0.01
    assert count == int((sims >= threshold).sum())
    assert choose(sims[:100], right[:100], 0.01, 0.95)[0] == NEVER  # too little evidence


def test_conflicting_words_and_negations() -> None:
    assert conflicts(("rainy", "day"), ("rainy", "night"))
    assert conflicts(("morning",), ("evening",))
    assert conflicts(("cozy",), ("cozy", "not"))
    assert not conflicts(("rainy", "day"), ("rainy", "day", "sunday"))
    assert not conflicts((), ())


def test_buckets_name_the_kinds_of_slot() -> None:
    assert bucket_of(Slots()) == "text"
    assert bucket_of(Slots(genres=("jazz",), moods=("calm",))) == "genre+mood"
    assert bucket_of(Slots(genres=("jazz",), exclude_genres=("rock",))) == "genre+exclusion"


def test_a_hit_is_correct_when_half_the_fresh_answer_is_shared_and_constraints_hold(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    catalog = fake_generator.catalog
    jazz = np.array(fake_generator.generate(parser.parse("jazz"), 20)[0].rows)
    assert correct(catalog, jazz, jazz, Slots())
    mixed = np.concatenate([jazz[:10], np.arange(10)])
    assert correct(catalog, mixed, jazz, Slots())
    assert not correct(catalog, np.concatenate([jazz[:9], np.arange(11)]), jazz, Slots())
    # Sharing every track is not enough when the served ones break B's exclusion.
    assert not correct(catalog, jazz, jazz, Slots(exclude_genres=("jazz",)))


def test_calibration_serves_only_what_its_bound_allows(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    pairs = template_pairs(fake_generator.catalog.genre_names, per_kind=80)
    assert {p.kind for p in pairs} == {"paraphrase", "near", "contrast"}
    judged = judge(
        pairs,
        parser,
        lambda text: fake_generator.encoder.encode([text])[0],
        lambda intent: np.array(fake_generator.generate(intent, 30)[0].rows),
        fake_generator.catalog,
    )
    thresholds = calibrate(judged, target=0.05)
    assert not [j for j in judged if j.pair.kind == "contrast" and served(j, thresholds)]
    for bucket, threshold in thresholds.buckets.items():
        hits = [
            j
            for j in judged
            if j.bucket == bucket and not j.same_key and served(j, thresholds) and j.same_slots
        ]
        wrong = sum(not j.correct for j in hits)
        assert threshold == NEVER or upper_bound(wrong, len(hits)) <= 0.05


def test_one_key_is_served_whatever_the_cosine() -> None:
    from models.semantic import Thresholds

    pair = Pair("paraphrase", "workout", "workout mix")
    exact = Judged(pair, "activity", 0.2, True, True, False, True)
    assert served(exact, Thresholds(default=NEVER))
    near = Judged(pair, "activity", 0.95, False, True, False, True)
    assert served(near, Thresholds(default=0.9))
    assert not served(near, Thresholds(default=0.9, buckets={"activity": 0.97}))
    assert not served(Judged(pair, "activity", 0.99, False, True, True, True), Thresholds(0.5))
