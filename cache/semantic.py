"""`SemanticIndex`: the nearest cached prompt, when it is close enough *and* asks the same.

Each cached prompt's embedding is kept with the key of its entry and a signature (the
canonical slots, length and version: everything but the free text). Only a prompt of the
same signature may be served, so prompts are held per signature: a lookup compares the
vector with its signature's prompts alone, and returns the nearest whose cosine reaches
`threshold`. The signature is a veto, not a tie-breaker: on this encoder "jazz" and "no
jazz", or "fast rock" and "slow rock", are as close as paraphrases (cosine 0.46-0.92), and
only the parsed slots tell them apart.

Most signatures hold a few prompts: theirs sit in a small matrix and are compared exactly,
and remembering one is a row copy (an hnswlib insert cost 0.03 ms alone and about four times
that under load, on every miss). A signature past `dense_limit` prompts moves into the one
hnswlib index the big signatures share (one insert of all its prompts, a few ms, once), and
stays there until it holds no prompt. A lookup there takes as many neighbours as the search
beam holds (`ef`, which sets the cost) and keeps those of its own signature. One index for
all of them, not one each: an hnswlib index costs ~6 MB of locks however few it holds.

Bounded: when `capacity` prompts are held, the oldest one's place is reused (hnswlib's
replace-deleted mode in the index), so memory stays fixed however many prompts go by: a
matrix grows by doubling and halves when a quarter full, and the index reserves room for
`capacity` prompts, which costs memory only as it fills. The index is touched only from the
event loop.

`lookup` also reports the nearest same-signature prompt just below the threshold (a near
miss, within `near_margin`): its answer can join the miss path's candidates, and the edge's
verifier judges near misses to learn whether a threshold may come down. Thresholds may differ
per bucket (`thresholds`, e.g. calibrated per kind of slot) and are changed in place by the
verifier. `veto` sees both prompts' content words and can refuse a pair any cosine would pass.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import NamedTuple

import hnswlib
import numpy as np


class SemanticMatch(NamedTuple):
    key: str
    similarity: float
    text: str
    rows: tuple[int, ...] = ()
    """The remembered prompt's answer (catalog rows), when it was given."""


class Lookup(NamedTuple):
    hit: SemanticMatch | None
    """The nearest same-signature prompt at or above its bucket's threshold, not vetoed."""
    near: SemanticMatch | None
    """Otherwise the nearest one within `near_margin` below the threshold."""
    threshold: float


Veto = Callable[[tuple[str, ...], tuple[str, ...]], bool]


class _Slot(NamedTuple):
    key: str
    signature: str
    text: str
    words: tuple[str, ...]
    rows: tuple[int, ...]


class _Group:
    """One signature's prompts: a matrix compared exactly while small, else in the index."""

    __slots__ = ("indexed", "places", "size", "vectors")

    def __init__(self, dim: int) -> None:
        self.places: list[int] = []
        """Each row's place while the group is small (empty once indexed)."""
        self.vectors = np.empty((1, dim), dtype=np.float32)
        self.indexed = False
        self.size = 0

    def append(self, vector: np.ndarray, place: int) -> None:
        if self.size == len(self.vectors):
            grown = np.empty((2 * self.size, self.vectors.shape[1]), dtype=np.float32)
            grown[: self.size] = self.vectors
            self.vectors = grown
        self.vectors[self.size] = vector
        self.places.append(place)
        self.size += 1

    def remove(self, place: int) -> None:
        """Drop `place`'s row; the last row takes its place."""
        at, last = self.places.index(place), self.size - 1
        self.vectors[at] = self.vectors[last]
        self.places[at] = self.places[last]
        self.places.pop()
        self.size -= 1
        if 0 < self.size <= len(self.vectors) // 4:
            self.vectors = self.vectors[: 2 * self.size].copy()

    def nearest(self, vector: np.ndarray, k: int) -> tuple[list[int], np.ndarray]:
        """Up to `k` places, nearest first, with their cosines."""
        sims = self.vectors[: self.size] @ vector
        order = np.argsort(-sims, kind="stable")[:k]
        return [self.places[i] for i in order], sims[order]


class SemanticIndex:
    def __init__(
        self,
        dim: int,
        *,
        capacity: int = 50_000,
        threshold: float = 0.85,
        neighbours: int = 8,
        ef: int = 64,
        ef_construction: int = 40,
        thresholds: Mapping[str, float] | None = None,
        near_margin: float = 0.1,
        veto: Veto | None = None,
        dense_limit: int = 256,
    ) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        self.capacity = capacity
        self.threshold = threshold
        """The threshold of buckets `thresholds` does not name."""
        self.thresholds: dict[str, float] = dict(thresholds or {})
        self.near_margin = near_margin
        self.veto = veto
        self.neighbours = neighbours
        self.dense_limit = dense_limit
        """Prompts a signature holds before they move into the shared hnswlib index."""
        self._dim = dim
        self._index = hnswlib.Index(space="ip", dim=dim)
        self._index.init_index(
            max_elements=capacity,
            M=16,
            # 40 rather than 100 halves the insert (0.053 against 0.116 ms of CPU at 6k
            # prompts); a new prompt's exact nearest neighbour is still among the 8
            # returned 99.5 % of the time, against 99.8 %.
            ef_construction=ef_construction,
            random_seed=1,
            allow_replace_deleted=True,
        )
        self._index.set_ef(ef)
        self._ef = ef
        # A prompt's place (0 .. capacity - 1) is reused in turn; its label in the index
        # never is: replace-deleted mode forgets the label of the deleted element whose
        # room it takes, which must not be a label in use again.
        self._slots: list[_Slot | None] = [None] * capacity
        self._place_of_key: dict[str, int] = {}
        self._place_of_label: dict[int, int] = {}
        self._label_at: dict[int, int] = {}
        self._labels = itertools.count()
        self._groups: dict[str, _Group] = {}
        self._indexed_groups = 0
        self._next = 0

    def __len__(self) -> int:
        return len(self._place_of_key)

    def threshold_of(self, bucket: str) -> float:
        return self.thresholds.get(bucket, self.threshold)

    def add(
        self,
        vector: np.ndarray,
        key: str,
        signature: str,
        text: str,
        words: tuple[str, ...] = (),
        rows: tuple[int, ...] = (),
    ) -> None:
        """Remember `key`'s prompt; the oldest prompt makes room once the index is full."""
        if key in self._place_of_key:
            return
        vector = vector.astype(np.float32, copy=False).reshape(-1)
        if vector.shape != (self._dim,):
            raise ValueError(f"a prompt vector has {self._dim} dimensions, not {vector.size}")
        place = self._next
        self._next = (self._next + 1) % self.capacity
        self._drop(place)
        group = self._groups.get(signature)
        if group is None:
            group = self._groups[signature] = _Group(self._dim)
        if group.indexed:
            self._insert(group, vector.reshape(1, -1), [place])
        else:
            group.append(vector, place)
            if group.size > self.dense_limit:
                vectors, places = group.vectors[: group.size], group.places
                group.indexed, group.places, group.size = True, [], 0
                self._indexed_groups += 1
                group.vectors = np.empty((0, self._dim), dtype=np.float32)
                self._insert(group, vectors, places)
        self._slots[place] = _Slot(key, signature, text, words, rows)
        self._place_of_key[key] = place

    def _insert(self, group: _Group, vectors: np.ndarray, places: list[int]) -> None:
        labels = [next(self._labels) for _ in places]
        # One thread: the graph (and so every lookup) is the same on every run.
        self._index.add_items(vectors, labels, num_threads=1, replace_deleted=True)
        self._place_of_label.update(zip(labels, places, strict=True))
        self._label_at.update(zip(places, labels, strict=True))
        group.size += len(places)

    def _drop(self, place: int) -> None:
        slot = self._slots[place]
        if slot is None:
            return
        self._slots[place] = None
        del self._place_of_key[slot.key]
        group = self._groups[slot.signature]
        if group.indexed:
            label = self._label_at.pop(place)
            del self._place_of_label[label]
            self._index.mark_deleted(label)
            group.size -= 1
        else:
            group.remove(place)
        if not group.size:
            del self._groups[slot.signature]
            self._indexed_groups -= group.indexed

    def forget(self, key: str) -> None:
        place = self._place_of_key.get(key)
        if place is not None:
            self._drop(place)

    def nearest(self, vector: np.ndarray, signature: str) -> SemanticMatch | None:
        """The closest remembered prompt with this signature at or above the threshold."""
        return self.lookup(vector, signature).hit

    def lookup(
        self, vector: np.ndarray, signature: str, bucket: str = "", words: tuple[str, ...] = ()
    ) -> Lookup:
        """The nearest same-signature prompt that passes (`hit`), or else the nearest one
        just below the threshold (`near`)."""
        threshold = self.threshold_of(bucket)
        group = self._groups.get(signature)
        if group is None:
            return Lookup(None, None, threshold)
        if group.indexed:
            # Room for the other big signatures' prompts among the nearest: `neighbours` per
            # indexed signature, up to the search beam (`ef` sets the cost, not k).
            wanted = self.neighbours * self._indexed_groups
            k = min(max(self._ef, self.neighbours), wanted, len(self._label_at))
            found, distances = self._index.knn_query(vector.reshape(1, -1), k=k)
            places = [self._place_of_label[label] for label in found[0].tolist()]
            sims = 1.0 - distances[0]
        else:
            query = vector.astype(np.float32, copy=False).reshape(-1)
            places, sims = group.nearest(query, self.neighbours)
        slots = [self._slots[place] for place in places]
        nearest = [
            (slot, similarity)
            for slot, similarity in zip(slots, sims.tolist(), strict=True)
            if slot is not None and slot.signature == signature
        ][: self.neighbours]
        near = None
        for slot, similarity in nearest:
            if similarity < threshold - self.near_margin:
                break  # nearest first: nothing further can pass
            if self.veto is not None and self.veto(slot.words, words):
                continue
            match = SemanticMatch(slot.key, similarity, slot.text, slot.rows)
            if similarity >= threshold:
                return Lookup(match, None, threshold)
            near = near or match
        return Lookup(None, near, threshold)
