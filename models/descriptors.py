"""Descriptor texts for tracks, and track vectors made from them.

A descriptor renders a track's metadata and binned features as words in three parts: genre
("jazz music"), style ("calm, mellow, relaxing, slow tempo, instrumental, no vocals") and
context ("from the 1960s, good for focus and studying"), so prompts and tracks meet in one
embedding space. Binning makes many tracks share each part: every distinct part text is
encoded once, a track vector is the weighted sum of its parts' vectors plus a small seeded
jitter that keeps tracks distinct in the HNSW graph (identical points degrade its links).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
from tqdm import tqdm

from models import vocab
from models.catalog import Catalog
from models.encoder import Encoder

# How much each part weighs in a track vector: what it is, how it feels, when it fits.
PART_WEIGHTS = {"genre": 1.0, "style": 1.0, "context": 0.6}


@dataclass(frozen=True)
class DescriptorParts:
    """Distinct texts per descriptor part and, per track, which text of each part it has."""

    texts: dict[str, list[str]]
    codes: dict[str, np.ndarray]  # part → int32 index into texts[part], one per track


def _phrases(bits: int, values: tuple[vocab.SlotValue, ...]) -> list[str]:
    return [v.describe for i, v in enumerate(values) if bits >> i & 1]


def _distinct(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique_first, inverse = np.unique(key, return_index=True, return_inverse=True)[1:]
    return unique_first, inverse.astype(np.int32)


def descriptor_parts(catalog: Catalog) -> DescriptorParts:
    """Bin every track and collect each part's distinct texts (vectorised over columns).

    Embedding whole sentences would need one encoder call per distinct combination (about
    200k at a million tracks, ~6 min); parts stay in the low thousands and compose by sum.
    """
    genre_text = (
        pc.binary_join(catalog.table.column("genres"), " and ")
        .to_numpy(zero_copy_only=False)
        .astype(str)
    )
    tempo_bin = np.digitize(catalog.features["tempo"], [95.0, 125.0]).astype(np.int64)
    vocals = (catalog.features["instrumentalness"] < 0.5).astype(np.int64)
    decade = np.where(catalog.year > 0, catalog.year // 10 * 10, 0).astype(np.int64)
    moods = catalog.mood_bits.astype(np.int64)
    activities = catalog.activity_bits.astype(np.int64)

    texts: dict[str, list[str]] = {}
    codes: dict[str, np.ndarray] = {}
    genre_names, codes["genre"] = np.unique(genre_text, return_inverse=True)
    codes["genre"] = codes["genre"].astype(np.int32)
    texts["genre"] = [f"{g} music" if g else "music" for g in genre_names]

    first, codes["style"] = _distinct(moods << 3 | tempo_bin << 1 | vocals)
    texts["style"] = [
        ", ".join(
            [
                *_phrases(int(moods[r]), vocab.MOODS),
                f"{('slow', 'mid tempo', 'fast')[tempo_bin[r]]} tempo",
                "with vocals" if vocals[r] else "instrumental, no vocals",
            ]
        )
        for r in first
    ]
    first, codes["context"] = _distinct(activities << 12 | decade)
    texts["context"] = [
        ", ".join(
            [
                *([f"from the {decade[r]}s"] if decade[r] else []),
                *_phrases(int(activities[r]), vocab.ACTIVITIES),
            ]
        )
        for r in first
    ]
    return DescriptorParts(texts=texts, codes=codes)


def embed_texts(
    encoder: Encoder, texts: list[str], batch_size: int = 256, progress: bool = True
) -> np.ndarray:
    """Encode texts in batches with a progress bar; returns (len(texts), dim) float32."""
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    with tqdm(total=len(texts), desc="embed descriptors", unit="text", disable=not progress) as bar:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            out[start : start + len(chunk)] = encoder.encode(chunk)
            bar.update(len(chunk))
    return out


def track_vectors(
    part_vectors: dict[str, np.ndarray],
    parts: DescriptorParts,
    *,
    jitter: float,
    seed: int,
    chunk: int = 65_536,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, unit vectors) chunk by chunk: weighted parts plus seeded jitter.

    Chunks keep peak memory at one chunk rather than a second copy of every vector.
    """
    n_tracks = len(parts.codes["genre"])
    dim = next(iter(part_vectors.values())).shape[1]
    for start in range(0, n_tracks, chunk):
        stop = min(start + chunk, n_tracks)
        rng = np.random.default_rng([seed, start])
        block = rng.standard_normal((stop - start, dim), dtype=np.float32)
        block *= jitter / np.sqrt(dim)
        for part, weight in PART_WEIGHTS.items():
            block += weight * part_vectors[part][parts.codes[part][start:stop]]
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        yield start, block
