"""`TrackIndex`: an hnswlib inner-product index over unit track vectors.

The graph holds float32 vectors in RAM, so its size is set by their width: track vectors are
projected onto the top principal directions of the catalog (uncentred, so inner products are
kept, not just distances) before indexing; at 1M tracks, 192 of 384 dimensions keep ~98.5 %
of the vectors' energy and cut the index from 1.7 to ~0.9 GB. Queries go through the same
projection (`project`). The ranker also needs vectors by row (diversity, exact scoring), and
hnswlib's `get_items` copies row by row (~0.5 ms for 60 rows), so rows are read from the
artifact's `vectors.npy` (projected too), memory-mapped: page cache, shared by worker
processes, not a second private copy. The mapping is populated at load
(`MADV_POPULATE_READ`): otherwise a query's first touch of a page is a fault, and gathering
the 60 rows that diversity compares took twice as long (0.13 against 0.06 ms at 1M tracks).
Rows are stored in 16-bit fixed point (int16 / 32767: unit vectors' components lie in
[-1, 1]). numpy widens float16 one element at a time (~2 ns each, 0.7 ms to score 1,800 rows
exactly) but int16 in vectorized loops, ~15× faster; and the fixed step moves a cosine by at
most ~4e-5, where float16's relative one moved it by up to ~2e-4 (the leading components
are large). hnswlib releases the GIL in `knn_query`.
"""

from __future__ import annotations

import contextlib
import mmap
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


STORE_DTYPE = np.dtype(np.int16)
"""Element type of the stored row vectors (format 3); float16 stores (format 2) still load."""
_FIXED_ONE = 32767.0  # the int16 value standing for 1.0


def to_store(vectors: np.ndarray) -> np.ndarray:
    """Unit-bounded float vectors in the stored fixed-point form."""
    scaled = np.clip(np.rint(np.asarray(vectors, dtype=np.float32) * _FIXED_ONE), -32767, 32767)
    fixed: np.ndarray = scaled.astype(STORE_DTYPE)
    return fixed


class TrackIndex:
    """Nearest-track search by cosine (inner product of unit vectors)."""

    def __init__(
        self, index: hnswlib.Index, ef_search: int, store: np.ndarray, projection: np.ndarray
    ) -> None:
        if len(store) != index.get_current_count() or store.shape[1] != index.dim:
            raise IndexError_(
                f"vector store {store.shape} does not match the index "
                f"({index.get_current_count()} × {index.dim})"
            )
        if projection.ndim != 2 or projection.shape[1] != index.dim:
            raise IndexError_(f"projection {projection.shape} does not end in {index.dim}")
        if store.dtype not in (STORE_DTYPE, np.float16):
            raise IndexError_(f"vector store of {store.dtype}, expected {STORE_DTYPE} or float16")
        self._unit = np.float32(1 / _FIXED_ONE if store.dtype == STORE_DTYPE else 1.0)
        self._index = index
        # A plain view of a memmap: np.memmap's Python-level indexing costs ~2.5 µs a call.
        self._store = store.view(np.ndarray)
        self.projection = np.ascontiguousarray(projection, dtype=np.float32)
        self.ef_search = ef_search
        index.set_ef(ef_search)

    @property
    def dim(self) -> int:
        """Width of the indexed (projected) vectors."""
        return int(self._index.dim)

    @property
    def input_dim(self) -> int:
        """Width of the vectors `project` takes (the encoder's)."""
        return int(self.projection.shape[0])

    def project(self, vectors: np.ndarray) -> np.ndarray:
        """Encoder-space vectors (one or a batch) in index space; inner products are kept."""
        return np.asarray(vectors, dtype=np.float32) @ self.projection

    def __len__(self) -> int:
        return int(self._index.get_current_count())

    @classmethod
    def build(
        cls,
        blocks: Iterable[tuple[int, np.ndarray]],
        store: np.ndarray,
        params: IndexParams,
        projection: np.ndarray,
        progress: bool = True,
    ) -> TrackIndex:
        """Add (first row, encoder-space vectors) blocks, projected, also into `store`."""
        n_items, dim = store.shape
        index = hnswlib.Index(space="ip", dim=dim)
        index.init_index(
            max_elements=n_items,
            ef_construction=params.ef_construction,
            M=params.m,
            random_seed=params.seed,
        )
        with tqdm(total=n_items, desc="build index", unit="track", disable=not progress) as bar:
            for start, full in blocks:
                block = full @ projection
                index.add_items(
                    block, np.arange(start, start + len(block)), num_threads=params.threads
                )
                store[start : start + len(block)] = to_store(block)
                bar.update(len(block))
        return cls(index, params.ef_search, store, projection)

    def save(self, path: Path) -> None:
        self._index.save_index(str(path))

    @classmethod
    def load(
        cls, path: Path, vectors_path: Path, projection_path: Path, dim: int, ef_search: int
    ) -> TrackIndex:
        """Load a saved index, its projection, and memory-map its vectors; checksums are the
        caller's job."""
        index = hnswlib.Index(space="ip", dim=dim)
        try:
            index.load_index(str(path))
            store = np.load(vectors_path, mmap_mode="r")
            _populate(store)
            projection = np.load(projection_path)
        except (RuntimeError, OSError, ValueError) as exc:
            raise IndexError_(f"{path}: cannot load index: {exc}") from exc
        return cls(index, ef_search, store, projection)

    def set_ef(self, ef: int) -> None:
        """Change the search beam width (calibration; not for the request path)."""
        self.ef_search = ef
        self._index.set_ef(ef)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows and (projected) cosine similarities for one query already in index
        space (`project`).

        hnswlib searches with max(ef, k), so over-fetching needs no ef change (and none of the
        shared state a concurrent search could see).
        """
        k = min(k, len(self))
        try:
            labels, distances = self._index.knn_query(query.reshape(1, -1), k=k, num_threads=1)
        except RuntimeError as exc:
            raise IndexError_(f"search failed: {exc}") from exc
        return labels[0].astype(np.int64), 1.0 - distances[0]

    def vectors(self, rows: np.ndarray | slice) -> np.ndarray:
        """The stored unit vectors of `rows`, as float32."""
        widened: np.ndarray = self._store[rows].astype(np.float32)
        widened *= self._unit
        return widened


_MADV_POPULATE_READ = getattr(mmap, "MADV_POPULATE_READ", 22)  # Linux ≥ 5.14


def _populate(store: np.ndarray) -> None:
    """Map every page of a memory-mapped array now (reading it in if needed), so queries
    never fault; a kernel without the advice just serves faults as before."""
    mapping = getattr(store, "_mmap", None)  # np.memmap's mmap object
    if mapping is None:
        return
    with contextlib.suppress(OSError):
        mapping.madvise(_MADV_POPULATE_READ)


def fit_projection(blocks: Iterable[tuple[int, np.ndarray]], dims: int) -> tuple[np.ndarray, float]:
    """The `dims` leading directions of the vectors' (uncentred) second moment, as a
    (width, dims) matrix, and the share of the vectors' energy they keep.

    One streaming pass: only a width × width sum is held. With `dims` at or above the width,
    the identity (nothing is reduced).
    """
    moment: np.ndarray | None = None
    for _start, block in blocks:
        part = block.T.astype(np.float64) @ block
        moment = part if moment is None else moment + part
    if moment is None:
        raise IndexError_("no vectors to fit a projection on")
    width = moment.shape[0]
    if dims >= width:
        return np.eye(width, dtype=np.float32), 1.0
    values, vectors = np.linalg.eigh(moment)  # ascending
    order = np.argsort(values)[::-1][:dims]
    kept = float(values[order].sum() / values.sum())
    return np.ascontiguousarray(vectors[:, order], dtype=np.float32), kept


def exact_top_k(index: TrackIndex, queries: np.ndarray, k: int, chunk: int = 131_072) -> np.ndarray:
    """Brute-force top-k rows per query over the index's stored vectors, in chunks."""
    best_rows = np.empty((len(queries), 0), dtype=np.int64)
    best_sims = np.empty((len(queries), 0), dtype=np.float32)
    for start in range(0, len(index), chunk):
        sims = queries @ index.vectors(slice(start, start + chunk)).T
        rows = np.broadcast_to(np.arange(start, start + sims.shape[1]), sims.shape)
        sims = np.concatenate([best_sims, sims], axis=1)
        rows = np.concatenate([best_rows, rows], axis=1)
        keep = np.argpartition(-sims, min(k, sims.shape[1]) - 1, axis=1)[:, :k]
        best_sims = np.take_along_axis(sims, keep, axis=1)
        best_rows = np.take_along_axis(rows, keep, axis=1)
    return best_rows


class Recall(msgspec.Struct, frozen=True):
    """recall@k at one ef: with ties (ann-benchmarks' rule) and strict set overlap."""

    ef: int
    recall: float
    strict: float


RECALL_EPSILON = 1e-3
"""A found track counts as a true neighbour if its similarity is within this of the k-th
best (ann-benchmarks' `knn_threshold`, epsilon 1e-3). Synthetic tracks that share all three
descriptor parts differ only by jitter, so the exact top 50 often ends in near-ties that no
ANN index orders exactly; the strict overlap is reported beside it."""


def choose_ef(
    index: TrackIndex, queries: np.ndarray, params: IndexParams
) -> tuple[int, list[Recall]]:
    """Smallest ef on a ladder whose recall@k against brute force reaches the target.

    `queries` are encoder-space vectors; brute force runs over the same (projected) vectors
    the index holds, so the recall is the graph search's, not the projection's. Returns the
    chosen ef and the recall measured at each ef tried; leaves the index at it.
    """
    k = min(params.recall_k, len(index))
    queries = index.project(queries)
    truth = exact_top_k(index, queries, k)
    kth = np.array(
        [
            np.sort(index.vectors(rows) @ query)[-k]
            for query, rows in zip(queries, truth, strict=True)
        ]
    )
    measured: list[Recall] = []
    for ef in sorted({max(ef, k) for ef in (32, 64, 128, 256, 512)}):
        index.set_ef(ef)
        strict = tied = 0
        for query, expected, floor in zip(queries, truth, kth, strict=True):
            found = index.search(query, k)[0]
            strict += len(np.intersect1d(found, expected))
            tied += int(np.sum(index.vectors(found) @ query >= floor - RECALL_EPSILON))
        measured.append(Recall(ef, tied / (k * len(queries)), strict / (k * len(queries))))
        if measured[-1].recall >= params.recall_target:
            break
    return measured[-1].ef, measured
