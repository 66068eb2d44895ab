"""SemanticIndex: threshold, signature veto, bounded capacity (unit vectors made by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from cache.semantic import SemanticIndex


def _unit(*values: float, dim: int = 8) -> np.ndarray:
    v = np.zeros(dim, dtype=np.float32)
    v[: len(values)] = values
    return v / np.linalg.norm(v)


def test_close_prompt_with_same_signature_hits() -> None:
    index = SemanticIndex(8, capacity=16, threshold=0.9)
    index.add(_unit(1, 0.1), "k1", "slots-a", "jazz for dinner")
    match = index.nearest(_unit(1, 0.2), "slots-a")
    assert match is not None
    assert match.key == "k1"
    assert match.text == "jazz for dinner"
    assert match.similarity == pytest.approx(float(_unit(1, 0.1) @ _unit(1, 0.2)), abs=1e-5)


def test_signature_vetoes_an_identical_vector() -> None:
    index = SemanticIndex(8, capacity=16, threshold=0.5)
    index.add(_unit(1), "k1", "slots-a", "jazz")
    assert index.nearest(_unit(1), "slots-b") is None


def test_below_threshold_misses() -> None:
    index = SemanticIndex(8, capacity=16, threshold=0.95)
    index.add(_unit(1, 0), "k1", "s", "a")
    assert index.nearest(_unit(1, 0.5), "s") is None  # cosine 0.894


def test_a_vetoed_nearest_lets_the_next_matching_one_hit() -> None:
    index = SemanticIndex(8, capacity=16, threshold=0.8)
    index.add(_unit(1, 0.05), "near-other-slots", "s2", "a")
    index.add(_unit(1, 0.3), "farther-same-slots", "s1", "b")
    match = index.nearest(_unit(1), "s1")
    assert match is not None
    assert match.key == "farther-same-slots"


def test_capacity_is_bounded_and_oldest_goes_first() -> None:
    index = SemanticIndex(8, capacity=3, threshold=0.99)
    vectors = [_unit(*([0.0] * i + [1.0])) for i in range(5)]
    for i, v in enumerate(vectors):
        index.add(v, f"k{i}", "s", str(i))
    assert len(index) == 3
    assert index.nearest(vectors[0], "s") is None
    assert index.nearest(vectors[1], "s") is None
    for i in (2, 3, 4):
        match = index.nearest(vectors[i], "s")
        assert match is not None
        assert match.key == f"k{i}"


def test_forgotten_prompt_no_longer_hits_and_can_come_back() -> None:
    index = SemanticIndex(8, capacity=2, threshold=0.99)
    index.add(_unit(1), "k1", "s", "a")
    index.forget("k1")
    assert index.nearest(_unit(1), "s") is None
    for i in range(4):  # wrap around over the forgotten slot
        index.add(_unit(0, 1, i), f"n{i}", "s", "b")
    index.add(_unit(1), "k1", "s", "a")
    match = index.nearest(_unit(1), "s")
    assert match is not None
    assert match.key == "k1"


def test_lookups_match_an_exact_search_through_evictions_forgets_and_moves() -> None:
    """Seeded random adds and forgets over three signatures, with small groups compared
    exactly and groups past `dense_limit` in the hnswlib index: every lookup finds what an
    exact search over the held prompts finds."""
    rng = np.random.default_rng(5)
    capacity, dim = 20, 8
    index = SemanticIndex(dim, capacity=capacity, threshold=0.01, near_margin=0.0, dense_limit=3)
    held: dict[str, tuple[np.ndarray, str, int]] = {}
    place, moved = 0, False
    for step in range(400):
        if held and rng.random() < 0.2:
            key = str(rng.choice(sorted(held)))
            index.forget(key)
            del held[key]
        else:
            key, signature = f"k{step}", f"s{rng.integers(3)}"
            vector = _unit(*np.abs(rng.normal(size=dim)), dim=dim)
            held = {k: v for k, v in held.items() if v[2] != place}  # the oldest place's
            held[key] = (vector, signature, place)
            place = (place + 1) % capacity
            index.add(vector, key, signature, key)
        moved |= any(g.indexed for g in index._groups.values())
        assert len(index) == len(held)
        query = _unit(*np.abs(rng.normal(size=dim)), dim=dim)
        for signature in ("s0", "s1", "s2"):
            same = {k: float(v @ query) for k, (v, s, _) in held.items() if s == signature}
            match = index.nearest(query, signature)
            if not same:
                assert match is None
            else:
                assert match is not None
                assert match.key == max(same, key=same.__getitem__)
                assert match.similarity == pytest.approx(same[match.key], abs=1e-5)
    assert moved  # some group went past dense_limit into the index


@pytest.mark.parametrize("dense_limit", [256, 1])
def test_within_a_signature_a_vetoed_nearest_gives_way_and_near_misses_show(
    dense_limit: int,
) -> None:
    """Inside one signature, compared exactly (small) or through its own hnswlib index: a
    vetoed nearest prompt lets the next one hit, and below the threshold the nearest one
    within the margin is the near miss."""

    def veto(held: tuple[str, ...], asked: tuple[str, ...]) -> bool:
        return "night" in held and "day" in asked

    index = SemanticIndex(
        8, capacity=16, threshold=0.9, near_margin=0.2, veto=veto, dense_limit=dense_limit
    )
    index.add(_unit(1, 0.05), "closest", "s", "a", ("night",))
    index.add(_unit(1, 0.3), "second", "s", "b", ("day",))
    index.add(_unit(1, 0.6), "third", "s", "c", ("day",))
    index.add(_unit(0, 1), "far", "s", "d")
    found = index.lookup(_unit(1), "s", words=("day",))
    assert found.hit is not None
    assert found.hit.key == "second"  # cosine 0.958; "closest" (0.999) is vetoed
    near = index.lookup(_unit(1, 0.75), "s", words=("day",))  # "third" 0.991 hits
    assert near.hit is not None
    assert near.hit.key == "third"
    below = index.lookup(_unit(0.6, 1), "s", words=("day",))
    assert below.hit is None
    assert below.near is not None
    assert below.near.key == "third"  # cosine 0.882: under 0.9, within the 0.2 margin
    assert index.lookup(_unit(0, 0, 1), "s").near is None  # nothing within the margin
