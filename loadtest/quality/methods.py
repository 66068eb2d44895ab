"""The methods `bench quality` judges: baselines computed in the run, and the node's answer
(in process or over HTTP). Each is a callable(title) → up to `DEPTH` track ids."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec
import numpy as np
import xxhash
from tqdm import tqdm

from loadtest.quality.metrics import DEPTH
from models import artifacts
from models.corpus import CorpusPlaylist
from models.descriptors import embed_texts
from models.errors import IntentError
from models.titles import catalog_rows

ENCODE_BATCH = 64

Method = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Setup:
    """What a method factory may use: the artifacts, the run's settings and training data."""

    loaded: artifacts.Artifacts
    seed: int
    cache_dir: Path
    train: list[CorpusPlaylist]
    """Playlists outside the judged split (train, plus validation when judging test)."""


def random_method(setup: Setup) -> Method:
    """DEPTH catalog tracks drawn at random, seeded by the run's seed and the title."""
    catalog, size = setup.loaded.catalog, len(setup.loaded.catalog)

    def answer(title: str) -> Sequence[str]:
        rng = np.random.default_rng([setup.seed, xxhash.xxh3_64_intdigest(title.encode())])
        return catalog.id_strings.get(rng.choice(size, size=min(DEPTH, size), replace=False))

    return answer


def popular_method(setup: Setup) -> Method:
    """The catalog's DEPTH most popular tracks, whatever the title."""
    catalog = setup.loaded.catalog
    top = tuple(catalog.id_strings.get(np.argsort(-catalog.popularity, kind="stable")[:DEPTH]))
    return lambda _title: top


def naive_method(setup: Setup) -> Method:
    """Brute-force cosine between the encoded title and one encoded text per track."""
    catalog, encoder = setup.loaded.catalog, setup.loaded.encoder
    matrix = _track_matrix(setup)

    def answer(title: str) -> Sequence[str]:
        scores = matrix @ encoder.encode([title])[0]
        top = np.argpartition(-scores, min(DEPTH, len(scores) - 1))[:DEPTH]
        return catalog.id_strings.get(top[np.argsort(-scores[top], kind="stable")])

    return answer


def _track_matrix(setup: Setup) -> np.ndarray:
    """Unit rows of "{title} by {artist}. {genres}." per track, cached per artifact version."""
    path = setup.cache_dir / f"naive-tracks-{setup.loaded.version}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    table = setup.loaded.catalog.table
    texts = [
        f"{title} by {artist}. {', '.join(genres)}."
        for title, artist, genres in zip(
            table.column("title").to_pylist(),
            table.column("artist").to_pylist(),
            table.column("genres").to_pylist(),
            strict=True,
        )
    ]
    order = np.argsort([len(t) for t in texts], kind="stable")  # little padding per batch
    matrix = np.zeros((len(texts), setup.loaded.encoder.dim), dtype=np.float32)
    with tqdm(total=len(texts), desc="naive: encode tracks", unit="track") as bar:
        for start in range(0, len(order), ENCODE_BATCH):
            rows = order[start : start + ENCODE_BATCH]
            matrix[rows] = setup.loaded.encoder.encode([texts[r] for r in rows])
            bar.update(len(rows))
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    setup.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    with tmp.open("wb") as handle:
        np.save(handle, matrix)
    os.replace(tmp, path)
    return matrix


def model_method(setup: Setup, learned: bool = True) -> Method:
    """The node's miss path in process: parse the title, then `PlaylistGenerator.generate`;
    `learned=False` leaves out what the artifacts learned from playlists (content only)."""
    parser, generator = setup.loaded.parser, setup.loaded.generator()
    if not learned:
        generator = dataclasses.replace(setup.loaded, titles=None, cooccur=None).generator()
    if generator.params.max_length < DEPTH:
        raise ValueError(f"the generator's max_length {generator.params.max_length} < {DEPTH}")

    def answer(title: str) -> Sequence[str]:
        try:
            playlist, _ = generator.generate(parser.parse(title), DEPTH)
        except IntentError:
            return ()
        return playlist.ids

    return answer


class _TrackOut(msgspec.Struct):
    id: str


class _Answer(msgspec.Struct):
    tracks: list[_TrackOut]


def http_method(client: httpx.Client, url: str) -> Method:
    """A running node's answer to `GET /v1/playlists?q=TITLE&n=DEPTH`; a 400 is no answer."""

    def answer(title: str) -> Sequence[str]:
        response = client.get(f"{url.rstrip('/')}/v1/playlists", params={"q": title, "n": DEPTH})
        if response.status_code == 400:  # the node's IntentError: a title it cannot serve
            return ()
        response.raise_for_status()
        return [t.id for t in msgspec.json.decode(response.content, type=_Answer).tracks]

    return answer


def title_knn_method(setup: Setup, neighbours: int = 50) -> Method:
    """Plain title-kNN: the `neighbours` training playlists whose encoded titles are nearest
    the encoded prompt (brute force), their catalog tracks voted by squared similarity."""
    catalog, encoder = setup.loaded.catalog, setup.loaded.encoder
    lookup = catalog_rows(catalog)
    members = [rows[rows >= 0] for rows in (lookup(p.tracks) for p in setup.train)]
    titles = sorted({p.name for p in setup.train})
    vectors = embed_texts(encoder, titles, batch_size=1, desc="title-knn: titles")
    at = {title: i for i, title in enumerate(titles)}
    matrix = vectors[[at[p.name] for p in setup.train]] if setup.train else vectors

    def answer(title: str) -> Sequence[str]:
        if not len(members):
            return ()
        sims = matrix @ encoder.encode([title])[0]
        k = min(neighbours, len(sims))
        near = np.argpartition(-sims, k - 1)[:k]
        votes: dict[int, float] = {}
        for i in near.tolist():
            weight = float(max(sims[i], 0.0)) ** 2
            for row in members[i].tolist():
                votes[row] = votes.get(row, 0.0) + weight
        best = sorted(votes, key=lambda r: (-votes[r], r))[:DEPTH]
        return catalog.id_strings.get(best)

    return answer


BASELINES: dict[str, Callable[[Setup], Method]] = {
    "random": random_method,
    "popular": popular_method,
    "naive": naive_method,
    "title-knn": title_knn_method,
}
