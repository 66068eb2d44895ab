"""TrackIndex's stored row vectors: the fixed-point form keeps cosines."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import IndexError_
from models.index import STORE_DTYPE, IndexParams, TrackIndex, to_store


def _unit(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim)).astype(np.float32)
    vectors[:, 0] += 6.0  # one dominant direction, as after the projection
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _index(vectors: np.ndarray, store: np.ndarray) -> TrackIndex:
    projection = np.eye(vectors.shape[1], dtype=np.float32)
    return TrackIndex.build(
        [(0, vectors)], store, IndexParams(m=8, ef_construction=50), projection, progress=False
    )


def test_stored_vectors_keep_cosines_within_1e_4() -> None:
    """Fixed point moves a cosine far less than float16 (measured ~3e-5 at most here)."""
    rng = np.random.default_rng(5)
    vectors, queries = _unit(rng, 2000, 64), _unit(rng, 20, 64)
    index = _index(vectors, np.empty(vectors.shape, dtype=STORE_DTYPE))
    exact = vectors @ queries.T
    stored = index.vectors(np.arange(len(vectors))) @ queries.T
    half = vectors.astype(np.float16).astype(np.float32) @ queries.T
    assert np.abs(stored - exact).max() <= 1e-4
    assert np.abs(stored - exact).max() < np.abs(half - exact).max()
    np.testing.assert_array_equal(index.vectors(slice(10, 20)), index.vectors(np.arange(10, 20)))


def test_fixed_point_saturates_at_one() -> None:
    assert to_store(np.array([1.0, -1.0, 1.5, 0.0])).tolist() == [32767, -32767, 32767, 0]


def test_float16_stores_still_read() -> None:
    """Artifacts of format 2 hold float16 rows; they read back as the same floats."""
    rng = np.random.default_rng(6)
    vectors = _unit(rng, 300, 16)
    store = np.empty(vectors.shape, dtype=STORE_DTYPE)
    index = _index(vectors, store)
    old = TrackIndex(index._index, 64, vectors.astype(np.float16), index.projection)
    np.testing.assert_allclose(old.vectors(np.arange(5)), vectors[:5], atol=1e-3)
    with pytest.raises(IndexError_, match="float64"):
        TrackIndex(index._index, 64, vectors.astype(np.float64), index.projection)
