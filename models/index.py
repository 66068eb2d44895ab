"""`TrackIndex`: an hnswlib inner-product index over unit track vectors.

The graph holds float32 vectors in RAM. The ranker also needs vectors by row (diversity,
exact scoring), and hnswlib's `get_items` copies through Python lists (~20 ms for a few
hundred rows), so rows are read from the artifact's float16 `vectors.npy`, memory-mapped:
page cache, not a second resident copy. hnswlib releases the GIL in `knn_query`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import hnswlib
import msgspec
import numpy as np
from tqdm import tqdm

from models.errors import IndexError_


class IndexParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """HNSW parameters, recorded in the artifact manifest."""

    m: int = 16
    """Graph degree: links per node per layer (memory and recall grow with it)."""
    ef_construction: int = 200
    """Beam width while building: higher builds slower and links better."""
    ef_search: int = 128
    """Beam width while searching; `build` may raise it to reach `recall_target`."""
    recall_target: float = 0.95
    """recall@k against brute force that the chosen `ef_search` must reach."""
    recall_k: int = 50
    """k at which recall is measured."""
    threads: int = 2
    """Threads used to build the index."""
    seed: int = 100
    """Seed of hnswlib's level generator."""


class TrackIndex:
    """Nearest-track search by cosine (inner product of unit vectors)."""

    def __init__(self, index: hnswlib.Index, ef_search: int, store: np.ndarray) -> None:
        if len(store) != index.get_current_count() or store.shape[1] != index.dim:
            raise IndexError_(
                f"vector store {store.shape} does not match the index "
                f"({index.get_current_count()} × {index.dim})"
            )
        self._index = index
        self._store = store
        self.ef_search = ef_search
        index.set_ef(ef_search)

    @property
    def dim(self) -> int:
        return int(self._index.dim)

    def __len__(self) -> int:
        return int(self._index.get_current_count())

    @classmethod
    def build(
        cls,
        blocks: Iterable[tuple[int, np.ndarray]],
        store: np.ndarray,
        params: IndexParams,
        progress: bool = True,
    ) -> TrackIndex:
        """Add (first row, vectors) blocks, also copied into `store` (rows = catalog rows)."""
        n_items, dim = store.shape
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(
            max_elements=n_items,
            ef_construction=params.ef_construction,
            M=params.m,
            random_seed=params.seed,
        )
        with tqdm(total=n_items, desc="build index", unit="track", disable=not progress) as bar:
            for start, block in blocks:
                index.add_items(
                    block, np.arange(start, start + len(block)), num_threads=params.threads
                )
                store[start : start + len(block)] = block
                bar.update(len(block))
        return cls(index, params.ef_search, store)

    def save(self, path: Path) -> None:
        self._index.save_index(str(path))

    @classmethod
    def load(cls, path: Path, vectors_path: Path, dim: int, ef_search: int) -> TrackIndex:
        """Load a saved index and memory-map its vectors; checksums are the caller's job."""
        index = hnswlib.Index(space="ip", dim=dim)
        try:
            index.load_index(str(path))
            store = np.load(vectors_path, mmap_mode="r")
        except (RuntimeError, OSError, ValueError) as exc:
            raise IndexError_(f"{path}: cannot load index: {exc}") from exc
        return cls(index, ef_search, store)

    def set_ef(self, ef: int) -> None:
        """Change the search beam width (calibration; not for the request path)."""
        self.ef_search = ef
        self._index.set_ef(ef)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows and cosine similarities for one unit query vector.

        hnswlib searches with max(ef, k), so over-fetching needs no ef change (and none of the
        shared state a concurrent search could see).
        """
        k = min(k, len(self))
        try:
            labels, distances = self._index.knn_query(query.reshape(1, -1), k=k, num_threads=1)
        except RuntimeError as exc:
            raise IndexError_(f"search failed: {exc}") from exc
        return labels[0].astype(np.int64), 1.0 - distances[0]

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The stored unit vectors of `rows`."""
        return np.asarray(self._store[rows], dtype=np.float32)


def exact_top_k(
    vectors: np.ndarray, queries: np.ndarray, k: int, chunk: int = 131_072
) -> np.ndarray:
    """Brute-force top-k rows per query, reading `vectors` (may be a memmap) in chunks."""
    best_rows = np.empty((len(queries), 0), dtype=np.int64)
    best_sims = np.empty((len(queries), 0), dtype=np.float32)
    for start in range(0, len(vectors), chunk):
        sims = queries @ np.asarray(vectors[start : start + chunk], dtype=np.float32).T
        rows = np.broadcast_to(np.arange(start, start + sims.shape[1]), sims.shape)
        sims = np.concatenate([best_sims, sims], axis=1)
        rows = np.concatenate([best_rows, rows], axis=1)
        keep = np.argpartition(-sims, min(k, sims.shape[1]) - 1, axis=1)[:, :k]
        best_sims = np.take_along_axis(sims, keep, axis=1)
        best_rows = np.take_along_axis(rows, keep, axis=1)
    return best_rows


def choose_ef(
    index: TrackIndex, vectors: np.ndarray, queries: np.ndarray, params: IndexParams
) -> tuple[int, dict[int, float]]:
    """Smallest ef on a ladder whose recall@k against brute force reaches the target.

    Returns the chosen ef and the recall measured at each ef tried; leaves the index at it.
    """
    k = min(params.recall_k, len(index))
    truth = exact_top_k(vectors, queries, k)
    recalls: dict[int, float] = {}
    for ef in sorted({max(ef, k) for ef in (32, 64, 128, 256, 512)}):
        index.set_ef(ef)
        hits = sum(
            len(np.intersect1d(index.search(query, k)[0], expected))
            for query, expected in zip(queries, truth, strict=True)
        )
        recalls[ef] = hits / (k * len(queries))
        if recalls[ef] >= params.recall_target:
            return ef, recalls
    return ef, recalls
