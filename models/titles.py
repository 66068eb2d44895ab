"""The title model: which tracks listeners put together under which words.

Training titles are folded to a key (`title_key`: casefold, accents, emoji and punctuation
folded, filler words such as "playlist" and "mix" dropped). Each distinct key is embedded once
with the prompt encoder and indexed with hnswlib, and keeps the catalog tracks its playlists
hold, weighted by how many of them hold each (listener labels add or take away weight), its
`max_tracks` strongest only. It also keeps how many playlists hold each track: the
playlist-popularity prior.

At serve time the prompt's vector finds the `neighbours` nearest keys. Each key votes for its
tracks with weight similarity^`power` / playlists^`damping`, so that a title thousands of
playlists share does not drown a closer, rarer one. How far to trust the votes follows the
nearest key's similarity: nothing below `cold`, fully from `warm` up, linearly between, so a
prompt no listener wrote falls back smoothly to the content model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import hnswlib
import msgspec
import numpy as np
from tqdm import tqdm

from models.catalog import Catalog
from models.errors import ArtifactError, CorpusError
from models.songs import fold_text

TITLE_FILES = ("titles.npz", "titles.txt", "titles.hnsw")
FILLERS = frozenset(
    [
        "playlist",
        "playlists",
        "mix",
        "mixes",
        "music",
        "songs",
        "song",
        "tunes",
        "jams",
        "my",
        "the",
        "a",
        "of",
    ]
)
"""Words that say a title is a playlist, not what is in it ("Workout Mix" = "workout")."""


def title_key(title: str) -> str:
    """The folded title without fillers (the folded title itself if nothing else is left)."""
    folded = fold_text(title)
    kept = [word for word in folded.split() if word not in FILLERS]
    return " ".join(kept) or folded


class TitleSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How titles are learned and how their votes are read."""

    max_tracks: int = 200
    """Tracks kept per distinct title, the most often chosen first."""
    neighbours: int = 50
    """Nearest distinct titles that vote for a prompt."""
    power: float = 2.0
    """A neighbour's vote grows with its similarity to the prompt to this power."""
    damping: float = 0.5
    """A title's votes are divided by its playlist count to this power."""
    cold: float = 0.3
    """Nearest-title similarity at or below which the votes are not trusted at all."""
    warm: float = 0.8
    """Nearest-title similarity from which the votes are fully trusted."""
    m: int = 16
    """HNSW graph degree of the title index."""
    ef_construction: int = 200
    ef_search: int = 100


@dataclass(frozen=True)
class Example:
    """One training title with catalog rows and a weight per row (a playlist: all 1)."""

    title: str
    rows: np.ndarray
    weights: np.ndarray | None = None


@dataclass(frozen=True)
class Votes:
    """Tracks voted for by a prompt's nearest titles: sorted rows, scores in (0, 1] (the
    best is 1), and how far to trust them (0 for a cold prompt)."""

    rows: np.ndarray
    scores: np.ndarray
    trust: float

    @classmethod
    def none(cls) -> Votes:
        return cls(np.empty(0, np.int64), np.empty(0, np.float32), 0.0)

    def at(self, rows: np.ndarray) -> np.ndarray:
        """The score of each of `rows` (0 where not voted for)."""
        if not len(self.rows):
            return np.zeros(len(rows), dtype=np.float32)
        where = np.minimum(np.searchsorted(self.rows, rows), len(self.rows) - 1)
        hit = self.rows[where] == rows
        return np.where(hit, self.scores[where], 0.0).astype(np.float32)

    def top(self, k: int) -> np.ndarray:
        """The `k` best-voted rows, best first."""
        k = min(k, len(self.rows))
        if k == 0:
            return self.rows[:0]
        best = np.argpartition(-self.scores, k - 1)[:k]
        return self.rows[best[np.argsort(-self.scores[best], kind="stable")]]


class TitleModel:
    """Distinct training titles, their vectors in an hnswlib index, and their tracks."""

    def __init__(
        self,
        keys: list[str],
        playlists: np.ndarray,
        indptr: np.ndarray,
        rows: np.ndarray,
        weights: np.ndarray,
        track_playlists: np.ndarray,
        index: hnswlib.Index,
        settings: TitleSettings,
    ) -> None:
        self.keys = keys
        self.playlists = playlists
        self.indptr = indptr
        self.rows = rows
        self.weights = weights
        self.track_playlists = track_playlists
        self.index = index
        self.settings = settings
        self._scale = playlists.astype(np.float64) ** -settings.damping

    def __len__(self) -> int:
        return len(self.keys)

    @functools.cached_property
    def playlist_prior(self) -> np.ndarray:
        """log(1 + playlists holding the track) / log(1 + the most held track's), per row;
        made once per loaded model, however many generators share it."""
        top = float(self.track_playlists.max(initial=0.0))
        if top <= 0:
            return np.zeros(len(self.track_playlists), dtype=np.float32)
        prior: np.ndarray = (np.log1p(self.track_playlists) / math.log1p(top)).astype(np.float32)
        return prior

    def votes(self, vectors: np.ndarray, threads: int = 1) -> list[Votes]:
        """Votes for each of a batch of unit prompt vectors (one hnswlib query per batch)."""
        s = self.settings
        k = min(s.neighbours, len(self))
        labels, distances = self.index.knn_query(
            np.asarray(vectors, dtype=np.float32).reshape(-1, self.index.dim), k, threads
        )
        return [
            self._votes(found, 1.0 - gaps) for found, gaps in zip(labels, distances, strict=True)
        ]

    def _votes(self, titles: np.ndarray, sims: np.ndarray) -> Votes:
        s = self.settings
        best = float(sims.max(initial=0.0))
        trust = min(1.0, max(0.0, (best - s.cold) / (s.warm - s.cold)))
        if trust == 0.0:
            return Votes.none()
        starts, stops = self.indptr[titles], self.indptr[titles + 1]
        lengths = stops - starts
        # Every title's span of entries at once: entry j of the concatenation sits at its
        # title's start plus its place within that title.
        first = np.cumsum(lengths) - lengths
        at = np.arange(int(lengths.sum())) + np.repeat(starts - first, lengths)
        per_title = np.maximum(sims, 0.0) ** s.power * self._scale[titles]
        weight = self.weights[at] * np.repeat(per_title, lengths)
        rows, inverse = np.unique(self.rows[at], return_inverse=True)
        scores = np.bincount(inverse, weights=weight, minlength=len(rows))
        top = scores.max(initial=0.0)
        if top <= 0:
            return Votes.none()
        return Votes(rows.astype(np.int64), (scores / top).astype(np.float32), trust)

    # --- files ---------------------------------------------------------------------------

    def save(self, folder: Path) -> list[str]:
        """Write the model's files into `folder`; their names."""
        np.savez(
            folder / "titles.npz",
            playlists=self.playlists,
            indptr=self.indptr,
            rows=self.rows,
            weights=self.weights,
            track_playlists=self.track_playlists,
        )
        (folder / "titles.txt").write_text("".join(f"{k}\n" for k in self.keys), "utf-8")
        self.index.save_index(str(folder / "titles.hnsw"))
        return list(TITLE_FILES)

    @classmethod
    def load(cls, folder: Path, dim: int, settings: TitleSettings, tracks: int) -> TitleModel:
        """Read a saved model; checksums are the caller's job."""
        try:
            with np.load(folder / "titles.npz", allow_pickle=False) as saved:
                arrays = {name: saved[name] for name in saved.files}
            keys = (folder / "titles.txt").read_text("utf-8").splitlines()
            index = hnswlib.Index(space="ip", dim=dim)
            index.load_index(str(folder / "titles.hnsw"))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ArtifactError(f"{folder}: cannot load the title model: {exc}") from exc
        model = cls(keys, index=index, settings=settings, **arrays)
        model._check(tracks)
        index.set_ef(max(settings.ef_search, settings.neighbours))
        return model

    def _check(self, tracks: int) -> None:
        n = len(self.keys)
        ok = (
            len(self.playlists) == n == self.index.get_current_count()
            and len(self.indptr) == n + 1
            and self.indptr[0] == 0
            and self.indptr[-1] == len(self.rows) == len(self.weights)
            and bool(np.all(np.diff(self.indptr) >= 0))
            and len(self.track_playlists) == tracks
            and (not len(self.rows) or 0 <= int(self.rows.min()) <= int(self.rows.max()) < tracks)
            and bool(np.all(self.playlists > 0))
        )
        if not ok:
            raise ArtifactError("the title model's arrays disagree with each other or the catalog")


def catalog_rows(catalog: Catalog) -> Callable[[Sequence[str]], np.ndarray]:
    """A lookup from track ids to catalog rows (-1 for ids not in the catalog).

    Through the catalog's id dict, made once: Arrow's `index_in` hashes its whole value set
    on every call, which at a million tracks costs ~90 ms a playlist."""
    rows = catalog.row_of

    def lookup(track_ids: Sequence[str]) -> np.ndarray:
        return np.fromiter((rows.get(t, -1) for t in track_ids), np.int64, len(track_ids))

    return lookup


def learn(
    examples: Iterable[Example],
    tracks: int,
    embed: Callable[[list[str]], np.ndarray],
    settings: TitleSettings = TitleSettings(),
    *,
    threads: int = 2,
    progress: bool = True,
) -> TitleModel:
    """Aggregate examples per title key, embed each key once and index the keys.

    Negative weights (rejections) take weight away; a title's track keeps only a positive
    total. A title left with no track is dropped.
    """
    key_ids: dict[str, int] = {}
    counts: list[int] = []
    owners: list[np.ndarray] = []
    members: list[np.ndarray] = []
    amounts: list[np.ndarray] = []
    track_playlists = np.zeros(tracks, dtype=np.float64)
    for example in tqdm(examples, desc="titles: read", unit="playlist", disable=not progress):
        rows = np.asarray(example.rows, dtype=np.int64)
        weights = (
            np.ones(len(rows), dtype=np.float64)
            if example.weights is None
            else np.asarray(example.weights, dtype=np.float64)
        )
        if len(weights) != len(rows):
            raise CorpusError(f"title {example.title!r}: {len(rows)} rows, {len(weights)} weights")
        if len(rows) and (rows.min() < 0 or rows.max() >= tracks):
            raise CorpusError(f"title {example.title!r}: a track row outside the catalog")
        if not np.all(np.isfinite(weights)):
            raise CorpusError(f"title {example.title!r}: a weight that is not finite")
        key = title_key(example.title)
        if not key or not len(rows):
            continue
        code = key_ids.setdefault(key, len(key_ids))
        if code == len(counts):
            counts.append(0)
        if example.weights is None:  # a playlist: counted once per title and per track
            counts[code] += 1
            track_playlists[np.unique(rows)] += 1.0
        owners.append(np.full(len(rows), code, dtype=np.int64))
        members.append(rows)
        amounts.append(weights)
    if not key_ids:
        raise CorpusError("no training title holds a catalog track")
    owner = np.concatenate(owners)
    pair, inverse = np.unique(owner * tracks + np.concatenate(members), return_inverse=True)
    totals = np.bincount(inverse, weights=np.concatenate(amounts), minlength=len(pair))
    del owner, inverse
    keep = totals > 0
    pair, totals = pair[keep], totals[keep]
    title, row = pair // tracks, pair % tracks
    # Strongest tracks first within each title, then cut each title at max_tracks.
    order = np.lexsort((row, -totals, title))
    title, row, totals = title[order], row[order], totals[order]
    starts = np.searchsorted(title, np.arange(len(key_ids) + 1))
    rank = np.arange(len(title)) - starts[title]
    cut = rank < settings.max_tracks
    title, row, totals = title[cut], row[cut], totals[cut]
    held = np.bincount(title, minlength=len(key_ids))
    alive = np.flatnonzero(held > 0)
    names = list(key_ids)
    keys = [names[i] for i in alive.tolist()]
    indptr = np.zeros(len(keys) + 1, dtype=np.int64)
    np.cumsum(held[alive], out=indptr[1:])
    # Titles that only listener labels named count as one playlist for damping.
    playlists = np.maximum(np.asarray(counts, dtype=np.int32)[alive], 1)
    vectors = embed(keys)
    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    index.init_index(
        max_elements=max(len(keys), 1),
        M=settings.m,
        ef_construction=settings.ef_construction,
        random_seed=7,
    )
    index.add_items(vectors, np.arange(len(keys)), num_threads=threads)
    index.set_ef(max(settings.ef_search, settings.neighbours))
    return TitleModel(
        keys,
        playlists.astype(np.int32),
        indptr,
        row.astype(np.int32),
        totals.astype(np.float32),
        track_playlists.astype(np.float32),
        index,
        settings,
    )
