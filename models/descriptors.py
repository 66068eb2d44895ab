"""Track vectors composed from what the catalog knows about each track.

A track is described in parts, each a short text the prompt encoder reads: its artist, its
genres, the editorial playlists it is in (tags), the words of its title and album, its style
(moods, tempo, vocals, activities, from binned audio features), its decade and its year.
Every distinct text of a part is encoded once; a track vector is the weighted sum of its
parts' vectors (a part with several values, such as tags or words, contributes their mean),
normalised, plus a small seeded jitter that keeps equal tracks apart in the HNSW graph.

Composition keeps a million-track build to a few hundred thousand encoder calls (artists
and words dominate) instead of one per track, while two tracks by one artist, of one genre
and mood, still differ by their title and album words, tags and year. The part weights are
build settings recorded in the manifest; the defaults were chosen on the train split of a
real playlist corpus (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from models import vocab
from models.catalog import Catalog
from models.encoder import Encoder

# How much each part weighs in a track vector (before normalisation).
DEFAULT_PART_WEIGHTS: Mapping[str, float] = {
    "artist": 2.0,
    "genre": 0.5,
    "tags": 2.0,
    "words": 0.3,
    "style": 0.5,
    "decade": 4.0,
    "year": 4.0,
}

# Title and album words that say nothing about a track's sound or theme.
_STOPWORDS_TEXT = (
    "a an and the of in on at to for from with by is it i you me my your we our be feat ft "
    "remaster remastered version edit mix remix radio live mono stereo deluxe edition original "
    "bonus track vol pt part single album ep"
)
_STOPWORDS = frozenset(_STOPWORDS_TEXT.split())
_WORD_SPLIT = r"[^\w']+"


@dataclass(frozen=True)
class Part:
    """One descriptor part: distinct texts, and per track the texts it has (CSR layout)."""

    texts: list[str]
    offsets: np.ndarray  # int64, len(tracks) + 1
    codes: np.ndarray  # int32 indexes into texts, track by track


@dataclass(frozen=True)
class DescriptorParts:
    """Every part of every track."""

    parts: dict[str, Part]

    @property
    def texts(self) -> dict[str, list[str]]:
        """Distinct texts per part (what the build encodes)."""
        return {name: part.texts for name, part in self.parts.items()}


def _single(values: np.ndarray, render: list[str] | None = None) -> Part:
    """A part with exactly one text per track; `values` are the texts or keys of texts."""
    names, codes = np.unique(values, return_inverse=True)
    texts = render if render is not None else [str(v) for v in names]
    return Part(texts, np.arange(len(values) + 1, dtype=np.int64), codes.astype(np.int32))


def _labels(values: pa.Array) -> Part:
    """A part whose text is a string column's value, one per track."""
    encoded = pc.dictionary_encode(values)
    texts = [str(t) for t in encoded.dictionary.to_pylist()]
    offsets = np.arange(len(values) + 1, dtype=np.int64)
    return Part(texts, offsets, encoded.indices.to_numpy().astype(np.int32))


def _bag(lists: pa.Array) -> Part:
    """A part with zero or more texts per track, from an Arrow list array of strings."""
    flat = pc.list_flatten(lists)
    offsets = lists.offsets.to_numpy().astype(np.int64)
    offsets -= offsets[0]
    encoded = pc.dictionary_encode(flat) if len(flat) else None
    if encoded is None:
        return Part([], offsets, np.empty(0, dtype=np.int32))
    texts = [str(t) for t in encoded.dictionary.to_pylist()]
    return Part(texts, offsets, encoded.indices.to_numpy().astype(np.int32))


def _phrases(bits: int, values: tuple[vocab.SlotValue, ...]) -> list[str]:
    return [v.describe for i, v in enumerate(values) if bits >> i & 1]


def _words(catalog: Catalog) -> pa.Array:
    """Per track, the distinct content words of its title and album (casefolded)."""
    text = pc.binary_join_element_wise(
        catalog.table.column("title"), catalog.table.column("album"), " "
    ).combine_chunks()
    lists = pc.split_pattern_regex(pc.utf8_lower(text), _WORD_SPLIT)
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy()
    keep = pc.and_(
        pc.greater_equal(pc.utf8_length(flat), 2),
        pc.invert(pc.or_(pc.is_in(flat, pa.array(sorted(_STOPWORDS))), pc.utf8_is_digit(flat))),
    ).to_numpy(zero_copy_only=False)
    words, parents = flat.filter(pa.array(keep)), parents[keep]
    counts = np.bincount(parents, minlength=len(lists))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), words)


def descriptor_parts(catalog: Catalog) -> DescriptorParts:
    """Every part's distinct texts and which of them each track has (vectorised)."""
    table = catalog.table
    genre_text = (
        pc.binary_join(table.column("genres"), " and ").to_numpy(zero_copy_only=False).astype(str)
    )
    genres, genre_codes = np.unique(genre_text, return_inverse=True)
    tempo_bin = np.digitize(catalog.features["tempo"], [95.0, 125.0]).astype(np.int64)
    vocals = (catalog.features["instrumentalness"] < 0.5).astype(np.int64)
    moods = catalog.mood_bits.astype(np.int64)
    activities = catalog.activity_bits.astype(np.int64)
    style_key = activities << 16 | moods << 3 | tempo_bin << 1 | vocals
    first = np.unique(style_key, return_index=True)[1]
    style_texts = [
        ", ".join(
            [
                *_phrases(int(moods[r]), vocab.MOODS),
                f"{('slow', 'mid tempo', 'fast')[tempo_bin[r]]} tempo",
                "with vocals" if vocals[r] else "instrumental, no vocals",
                *_phrases(int(activities[r]), vocab.ACTIVITIES),
            ]
        )
        for r in first
    ]
    year = catalog.year.astype(np.int64)
    decade = np.where(year > 0, year // 10 * 10, 0)
    decades = np.unique(decade)
    years = np.unique(year)
    parts = {
        "artist": _labels(table.column("artist").combine_chunks()),
        "genre": Part(
            [f"{g} music" if g else "music" for g in genres],
            np.arange(len(catalog) + 1, dtype=np.int64),
            genre_codes.astype(np.int32),
        ),
        "tags": _bag(table.column("tags").combine_chunks()),
        "words": _bag(_words(catalog)),
        "style": _single(style_key, style_texts),
        "decade": _single(decade, [f"{d}s music" if d else "music" for d in decades]),
        "year": _single(year, [f"songs from {y}" if y else "music" for y in years]),
    }
    return DescriptorParts(parts)


def embed_texts(
    encoder: Encoder,
    texts: list[str],
    batch_size: int = 256,
    progress: bool = True,
    desc: str = "",
    workers: int = 1,
) -> np.ndarray:
    """Encode texts in batches with a progress bar; returns (len(texts), dim) float32.

    With `workers` > 1, that many threads encode runs of batches at once (onnxruntime's
    `run` releases the GIL). Every batch is the same as with one worker, so the vectors
    are too; for batch-1 descriptor texts, two single-threaded workers embed ~1.9× as
    many a second as one call on two intra-op threads, which short inputs cannot keep busy.
    """
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    label = f"embed {desc}".strip()
    run = batch_size * 64  # texts per task: enough to amortise the hand-off

    def encode_run(start: int) -> int:
        stop = min(start + run, len(texts))
        for first in range(start, stop, batch_size):
            chunk = texts[first : min(first + batch_size, stop)]
            out[first : first + len(chunk)] = encoder.encode(chunk)
        return stop - start

    with tqdm(total=len(texts), desc=label, unit="text", disable=not progress) as bar:
        starts = range(0, len(texts), run)
        if workers <= 1 or len(starts) <= 1:
            for start in starts:
                bar.update(encode_run(start))
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for done in pool.map(encode_run, starts):
                    bar.update(done)
    return out


def _part_block(part: Part, vectors: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Mean of each track's part vectors for tracks [start, stop); zero where it has none."""
    lo, hi = int(part.offsets[start]), int(part.offsets[stop])
    local = part.offsets[start : stop + 1] - lo
    if hi == lo:
        return np.zeros((stop - start, vectors.shape[1]), dtype=np.float32)
    counts = np.diff(local)
    if np.all(counts == 1):
        single: np.ndarray = vectors[part.codes[lo:hi]]
        return single
    # Segment sums as differences of a running sum: np.add.reduceat mishandles empty segments.
    running = np.zeros((hi - lo + 1, vectors.shape[1]), dtype=np.float32)
    np.cumsum(vectors[part.codes[lo:hi]], axis=0, out=running[1:])
    sums: np.ndarray = running[local[1:]] - running[local[:-1]]
    sums /= np.maximum(counts, 1)[:, None].astype(np.float32)
    return sums


def track_vectors(
    part_vectors: Mapping[str, np.ndarray],
    parts: DescriptorParts,
    weights: Mapping[str, float],
    *,
    jitter: float,
    seed: int,
    chunk: int = 16_384,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first row, unit vectors) chunk by chunk: weighted parts plus seeded jitter.

    Chunks keep peak memory at one chunk rather than a second copy of every vector.
    """
    n_tracks = len(parts.parts["artist"].offsets) - 1
    dim = next(iter(part_vectors.values())).shape[1]
    for start in range(0, n_tracks, chunk):
        stop = min(start + chunk, n_tracks)
        block = np.zeros((stop - start, dim), dtype=np.float32)
        for name, weight in weights.items():
            if weight:
                block += weight * _part_block(parts.parts[name], part_vectors[name], start, stop)
        block /= np.maximum(np.linalg.norm(block, axis=1, keepdims=True), 1e-12)
        rng = np.random.default_rng([seed, start])
        block += rng.standard_normal((stop - start, dim), dtype=np.float32) * (
            jitter / np.sqrt(dim)
        )
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        yield start, block
