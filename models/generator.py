"""`PlaylistGenerator`: the miss path — encode the prompt, search, rank — with stage timings."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from models.catalog import Catalog
from models.encoder import Encoder, PromptEncoder
from models.errors import IntentError
from models.fallback import FallbackPlaylists
from models.index import TrackIndex
from models.intent import Intent
from models.ranker import Playlist, Ranker, RankParams
from models.titles import TitleModel, Votes

Timings = dict[str, float]  # stage → milliseconds


@contextmanager
def _stage(timings: Timings, name: str, clock: Callable[[], float]) -> Iterator[None]:
    start = clock()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + (clock() - start) * 1000


class PlaylistGenerator:
    """Turns an intent into a playlist; blocking, so callers run it on a worker thread."""

    def __init__(
        self,
        *,
        catalog: Catalog,
        index: TrackIndex,
        encoder: Encoder,
        fallbacks: FallbackPlaylists,
        version: str,
        params: RankParams = RankParams(),
        titles: TitleModel | None = None,
        cooccur: np.ndarray | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.catalog = catalog
        self.encoder = encoder
        self.fallbacks = fallbacks
        self.version = version
        self.params = params
        self.titles = titles
        prior = titles.playlist_prior if titles is not None else None
        self.ranker = Ranker(catalog, index, params, prior, cooccur)
        self._clock = clock

    def embed(self, texts: list[str], timings: Timings) -> np.ndarray:
        """Unit vectors for texts, timing tokenize and encode apart when the encoder allows."""
        if isinstance(self.encoder, PromptEncoder):
            with _stage(timings, "tokenize", self._clock):
                ids, mask = self.encoder.tokenize(texts)
            with _stage(timings, "encode", self._clock):
                return self.encoder.run(ids, mask)
        with _stage(timings, "encode", self._clock):
            return self.encoder.encode(texts)

    def generate(
        self,
        intent: Intent,
        n: int | None = None,
        vector: np.ndarray | None = None,
        votes: Votes | None = None,
        extra: Sequence[int] = (),
    ) -> tuple[Playlist, Timings]:
        """Rank `n` tracks for the intent; pass `vector` when the prompt is already encoded
        (and `votes` when the title model has already voted for it, batched); `extra` rows
        join the candidates (a near paraphrase's answer)."""
        n = self._length(n)
        timings: Timings = {}
        if vector is None:
            vector = self.embed([intent.query_text], timings)[0]
        if votes is None:
            votes = self.votes(vector[None, :], timings)[0]
        with _stage(timings, "search", self._clock):
            rows, sims = self.ranker.candidates(vector, intent.slots, n, votes, extra)
        with _stage(timings, "rank", self._clock):
            ranked, scores = self.ranker.rank(rows, sims, intent.slots, n, votes)
            playlist = Playlist.of(self.catalog, ranked, scores, self.version)
        return playlist, timings

    def votes(self, vectors: np.ndarray, timings: Timings) -> list[Votes]:
        """The title model's votes for a batch of prompt vectors (none without the model)."""
        if self.titles is None or not self.params.title_weight:
            return [Votes.none()] * len(vectors)
        with _stage(timings, "titles", self._clock):
            return self.titles.votes(vectors)

    def fallback(self, intent: Intent, n: int | None = None) -> Playlist:
        """A degraded playlist from the precomputed lists; needs neither encoder nor index."""
        return self.fallbacks.pick(self.catalog, intent.slots, self._length(n), self.version)

    def _length(self, n: int | None) -> int:
        n = self.params.length if n is None else n
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= self.params.max_length:
            raise IntentError(f"playlist length must be 1..{self.params.max_length}, got {n}")
        return n
