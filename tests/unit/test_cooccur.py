"""Track co-occurrence vectors learned from small seeded playlist corpora."""

from __future__ import annotations

import numpy as np
import pytest

from models.cooccur import CooccurSettings, fit_track_factors
from models.errors import CorpusError, ModelError

# Two factors: the corpora below have two camps, and wider factors would fit their noise.
SETTINGS = CooccurSettings(factors=2, iterations=10, seed=3, threads=1)
TRACKS = 40


def two_camps(seed: int = 0, playlists: int = 120) -> list[np.ndarray]:
    """Playlists drawn from tracks 0-9 or from tracks 10-19, never both; 20+ never appear."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(playlists):
        camp = 10 * (i % 2)
        out.append(camp + rng.choice(10, size=int(rng.integers(3, 8)), replace=True))
    return out


def test_tracks_listed_together_are_nearer_than_tracks_never_listed_together() -> None:
    """Every track is closer (cosine) to a track of its own camp than to any of the other."""
    vectors = fit_track_factors(two_camps(), TRACKS, SETTINGS)
    cosine = vectors[:20] @ vectors[:20].T
    camp = np.arange(20) // 10
    other = camp[:, None] != camp[None, :]
    same = ~other
    np.fill_diagonal(same, False)
    for track in range(20):
        assert cosine[track][same[track]].mean() > cosine[track][other[track]].max()


def test_vectors_are_unit_float32_with_zero_rows_for_unseen_tracks() -> None:
    """Seen tracks get unit vectors of the configured width; tracks in no playlist get zeros."""
    vectors = fit_track_factors(two_camps(), TRACKS, SETTINGS)
    assert vectors.shape == (TRACKS, SETTINGS.factors)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:20], axis=1), 1.0, rtol=1e-5)
    assert not vectors[20:].any()


def test_min_playlists_zeroes_rare_tracks() -> None:
    """A track in fewer playlists than `min_playlists` gets a zero vector."""
    corpus = [*two_camps(), np.array([30, 0, 1])]
    vectors = fit_track_factors(corpus, TRACKS, SETTINGS)
    assert vectors[30].any()
    rare_dropped = fit_track_factors(
        corpus,
        TRACKS,
        CooccurSettings(factors=2, iterations=10, seed=3, threads=1, min_playlists=2),
    )
    assert not rare_dropped[30].any()
    assert rare_dropped[0].any()


def test_same_seed_same_vectors_any_thread_count() -> None:
    """One seed gives identical vectors, with one thread or two; another seed differs."""
    corpus = two_camps()
    first = fit_track_factors(corpus, TRACKS, SETTINGS)
    again = fit_track_factors(
        corpus, TRACKS, CooccurSettings(factors=2, iterations=10, seed=3, threads=2)
    )
    other = fit_track_factors(
        corpus, TRACKS, CooccurSettings(factors=2, iterations=10, seed=4, threads=1)
    )
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_heavier_weights_pull_tracks_together() -> None:
    """Track 20 sits once with 0-2 and once with 10-12; weighting the second moves it there."""
    corpus = [*two_camps(), np.array([20, 0, 1, 2]), np.array([20, 10, 11, 12])]
    ones = [np.ones(len(p)) for p in corpus]
    heavy = [w.copy() for w in ones]
    heavy[-1][:] = 5.0

    def lean(vectors: np.ndarray) -> float:
        """How much nearer track 20 is to tracks 10-12 than to tracks 0-2 (cosine)."""
        toward = vectors[[10, 11, 12]] @ vectors[20]
        away = vectors[[0, 1, 2]] @ vectors[20]
        return float(toward.mean() - away.mean())

    plain = fit_track_factors(corpus, TRACKS, SETTINGS, weights=ones)
    weighted = fit_track_factors(corpus, TRACKS, SETTINGS, weights=heavy)
    np.testing.assert_array_equal(plain, fit_track_factors(corpus, TRACKS, SETTINGS))
    assert lean(weighted) > lean(plain) + 0.5


@pytest.mark.parametrize(
    ("playlists", "weights", "message"),
    [
        ([np.array([0, 40])], None, "outside the catalog"),
        ([np.array([-1, 2])], None, "outside the catalog"),
        ([np.array([0, 1])], [np.array([1.0, -0.5])], "positive finite"),
        ([np.array([0, 1])], [np.array([1.0, np.nan])], "positive finite"),
        ([np.array([0, 1])], [np.array([1.0])], "differ in length"),
        ([np.array([0, 1])], [], "weight arrays"),
        ([], None, "no playlist holds a track"),
        ([np.array([], dtype=np.int64)], None, "no playlist holds a track"),
        ([np.array([0.5, 1.0])], None, "integer catalog rows"),
    ],
)
def test_bad_input_is_a_corpus_error(
    playlists: list[np.ndarray], weights: list[np.ndarray] | None, message: str
) -> None:
    """Rows outside the catalog, bad weights and an empty corpus raise `CorpusError`."""
    with pytest.raises(CorpusError, match=message):
        fit_track_factors(playlists, TRACKS, SETTINGS, weights=weights)


def test_bad_settings_are_a_model_error() -> None:
    """Settings outside their documented ranges are refused before any work."""
    with pytest.raises(ModelError, match="bad co-occurrence settings"):
        fit_track_factors(two_camps(), TRACKS, CooccurSettings(factors=0))
