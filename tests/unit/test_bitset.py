"""RowSet: packed row sets agree with the boolean masks they stand for."""

from __future__ import annotations

import numpy as np
import pytest

from models.bitset import RowSet


@pytest.mark.parametrize("size", [1, 63, 64, 65, 1000, 4099])
def test_set_algebra_matches_boolean_masks(size: int) -> None:
    rng = np.random.default_rng(size)
    a = rng.random(size) < 0.3
    b = rng.random(size) < 0.02
    sa, sb = RowSet.from_mask(a), RowSet.from_mask(b)
    for got, want in [
        (sa, a),
        (sa & sb, a & b),
        (sa | sb, a | b),
        (~sa, ~a),
        (~sa & ~sb, ~a & ~b),
        (RowSet.full(size), np.ones(size, dtype=bool)),
    ]:
        assert len(got) == int(want.sum())  # padding past the last row never counts
        np.testing.assert_array_equal(got.mask(), want)
        np.testing.assert_array_equal(got.rows(), np.flatnonzero(want))
        probe = rng.integers(0, size, 50)
        np.testing.assert_array_equal(got.contains(probe), want[probe])


def test_empty_set_lists_nothing() -> None:
    empty = RowSet.from_mask(np.zeros(200, dtype=bool))
    assert len(empty) == 0
    assert empty.rows().tolist() == []
    assert len(~empty) == 200
