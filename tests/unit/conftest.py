"""Unit fixtures: a small synthetic world over the deterministic fake encoder."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from models.descriptors import (
    DEFAULT_PART_WEIGHTS,
    descriptor_parts,
    embed_texts,
    track_vectors,
)
from models.encoder import FakeEncoder
from models.fallback import FallbackPlaylists
from models.generator import PlaylistGenerator
from models.index import STORE_DTYPE, IndexParams, TrackIndex, fit_projection
from models.intent import IntentParser, parser_for
from models.ranker import RankParams
from models.synthetic import synthetic_catalog


@pytest.fixture(scope="session")
def fake_generator() -> PlaylistGenerator:
    """3,000 synthetic tracks indexed with fake-encoder vectors."""
    catalog = synthetic_catalog(3000, seed=11)
    encoder = FakeEncoder()
    parts = descriptor_parts(catalog)
    vectors = {p: embed_texts(encoder, t, progress=False) for p, t in parts.texts.items()}

    def blocks() -> Iterator[tuple[int, np.ndarray]]:
        return track_vectors(vectors, parts, DEFAULT_PART_WEIGHTS, jitter=0.05, seed=1, chunk=1000)

    projection, _energy = fit_projection(blocks(), 64)
    store = np.empty((len(catalog), projection.shape[1]), dtype=STORE_DTYPE)
    index = TrackIndex.build(
        blocks(),
        store,
        IndexParams(m=12, ef_construction=100, ef_search=128),
        projection,
        progress=False,
    )
    fallbacks = FallbackPlaylists.build(catalog, 100, 2)
    return PlaylistGenerator(
        catalog=catalog,
        index=index,
        encoder=encoder,
        fallbacks=fallbacks,
        version="vtest",
        params=RankParams(),
    )


@pytest.fixture(scope="session")
def parser(fake_generator: PlaylistGenerator) -> IntentParser:
    return parser_for(fake_generator.catalog)
