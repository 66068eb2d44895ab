"""Slot filters, candidate planning and ranking into a `Playlist`.

Exclusions and `explicit` are hard constraints: a track that breaks one never appears.
Wanted genres, moods, activities, tempo and era are preferences: tracks meeting all of them
come first, and others only backfill a list that would otherwise be short.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import msgspec
import numpy as np
import xxhash

from models.bitset import RowSet
from models.catalog import Catalog
from models.errors import CatalogError, IntentError
from models.index import TrackIndex
from models.intent import Slots
from models.titles import Votes

_TIER_PENALTY = 1e3  # larger than any MMR value difference: tiers never interleave


class RankParams(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Ranking knobs; the edge passes its settings here."""

    length: int = 30
    """Playlist length when a request gives none."""
    max_length: int = 100
    """Longest playlist a request may ask for."""
    candidates: int = 150
    """Nearest tracks the first search asks for; enough matches among them end the search."""
    pool: int = 60
    """Best candidates (preferred first) that diversity chooses from."""
    enough: float = 2.0
    """The search stops at the first search's neighbours when this many times the length
    of them meet every preference (room for diversity and the artist cap to choose)."""
    exact_limit: int = 4096
    """When filters leave at most this many tracks, score them all instead of over-fetching."""
    max_fetch: int = 4000
    """Cap on how many neighbours an over-fetching search asks the index for."""
    diversity: float = 0.3
    """MMR weight of novelty against relevance (0 = pure relevance)."""
    max_per_artist: int = 2
    """Most tracks by one artist in a playlist (relaxed only if the list would be short)."""
    popularity_weight: float = 0.3
    """Bonus for a track of popularity 100, added to its cosine (chosen on a train split)."""
    popularity_fade: float = 0.5
    """How fast that bonus fades as a prompt gets specific: it is divided by 1 + this times
    the number of preference kinds the prompt sets (genre, mood, activity, tempo, era,
    artist, theme)."""
    theme_weight: float = 0.1
    """Bonus for a track whose title, album or tags name a theme the prompt asks for."""
    profile_weight: float = 4.0
    """Penalty per unit of mean absolute distance between the list's mean energy, valence,
    danceability and acousticness and the target profile (see `profile_prior`)."""
    profile_pool: int = 30
    """Best candidates (preferred first) whose mean audio features the target starts from."""
    profile_prior: float = 0.75
    """Share of the catalog's popularity-weighted mean profile in the target: the best
    candidates of a mood or activity slot sit at the edge of its audio predicate, while
    listeners' playlists under those words sound closer to the catalog's middle."""
    sound_emphasis: float = 2.0
    """When a prompt names a mood or an activity, `profile_weight` and `pool` are this many
    times larger. Such a prompt says mainly how the list should sound, and its preferred
    candidates all sit inside the slot's audio predicate, most at its far edge: a wider
    pool and a stronger pull let the list's mean sound come back towards the target."""
    artist_pull: float = 1.0
    """Weight of the named artists' centroid added to the query: their tracks and those of
    the nearest artists come first."""
    title_weight: float = 3.0
    """Weight of the title model's vote score (0..1, times how far the votes are trusted)
    added to a track's relevance; 0 ranks by the content model alone. This and the other
    title settings were chosen by 4-fold cross-validation on the dev corpus's train and
    validation splits."""
    title_candidates: int = 300
    """Best-voted tracks that join the content model's candidates."""
    title_preferred: float = 0.5
    """Voted tracks scoring at least this (times trust) count as preferred even when they
    miss a soft slot: listeners' own "chill" playlists are the better judge of chill."""
    cooccur_weight: float = 1.0
    """Weight of a track's co-occurrence cosine to the best-voted tracks (times trust)."""
    cooccur_seeds: int = 20
    """Best-voted tracks whose co-occurrence vectors say what goes with the prompt."""
    playlist_weight: float = 0.3
    """Bonus for the track most held by training playlists (log scale), faded like
    `popularity_weight`."""


class Playlist(msgspec.Struct, frozen=True):
    """An ordered list of tracks with scores; the fingerprint names exactly this list."""

    rows: tuple[int, ...]
    ids: tuple[str, ...]
    scores: tuple[float, ...]
    version: str
    fingerprint: str
    degraded: bool = False

    @classmethod
    def of(
        cls,
        catalog: Catalog,
        rows: Sequence[int],
        scores: Sequence[float],
        version: str,
        degraded: bool = False,
    ) -> Playlist:
        rows = [int(r) for r in rows]
        ids = tuple(catalog.id_strings.get(rows))
        return cls(
            tuple(rows),
            ids,
            tuple(np.round(np.asarray(scores, dtype=np.float64), 4).tolist()),
            version,
            fingerprint(version, ids),
            degraded,
        )


def fingerprint(version: str, ids: Sequence[str]) -> str:
    """xxh3-64 of the artifact version and the ordered track ids: names exactly one list."""
    return xxhash.xxh3_64_hexdigest("\n".join((version, *ids)).encode())


Mask = TypeVar("Mask", np.ndarray, RowSet)
Mask_co = TypeVar("Mask_co", np.ndarray, RowSet, covariant=True)


class _View(Protocol[Mask_co]):
    """Where slot masks come from: some rows (boolean arrays) or the whole catalog (sets)."""

    def everything(self) -> Mask_co: ...
    def slot(self, kind: str, name: str) -> Mask_co: ...
    def range(self, column: str, low: float, high: float) -> Mask_co: ...
    def instrumental(self) -> Mask_co: ...
    def explicit(self) -> Mask_co: ...
    def artists(self, names: tuple[str, ...]) -> Mask_co: ...


class _Picked:
    """Slot masks over some rows, as boolean arrays."""

    def __init__(self, catalog: Catalog, rows: np.ndarray) -> None:
        self.catalog = catalog
        self.rows = rows

    def everything(self) -> np.ndarray:
        return np.ones(len(self.rows), dtype=bool)

    def slot(self, kind: str, name: str) -> np.ndarray:
        return self.catalog.slot_mask(kind, name, self.rows)

    def range(self, column: str, low: float, high: float) -> np.ndarray:
        return self.catalog.range_mask(column, low, high, self.rows)

    def instrumental(self) -> np.ndarray:
        return self.catalog.instrumental_mask(self.rows)

    def explicit(self) -> np.ndarray:
        return np.asarray(self.catalog.explicit[self.rows], dtype=bool)

    def artists(self, names: tuple[str, ...]) -> np.ndarray:
        codes = _artist_codes(self.catalog, names)
        found: np.ndarray = np.isin(self.catalog.artist_codes[self.rows], codes)
        return found


class _Whole:
    """Slot masks over the whole catalog, as packed row sets."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def everything(self) -> RowSet:
        return self.catalog.every_row

    def slot(self, kind: str, name: str) -> RowSet:
        return self.catalog.slot_set(kind, name)

    def range(self, column: str, low: float, high: float) -> RowSet:
        return self.catalog.range_set(column, low, high)

    def instrumental(self) -> RowSet:
        return self.catalog.instrumental_set

    def explicit(self) -> RowSet:
        return self.catalog.explicit_set

    def artists(self, names: tuple[str, ...]) -> RowSet:
        mask = np.zeros(len(self.catalog), dtype=bool)
        for code in _artist_codes(self.catalog, names).tolist():
            mask[self.catalog.artist_rows(code)] = True
        return RowSet.from_mask(mask)


def hard_mask(catalog: Catalog, slots: Slots, rows: np.ndarray) -> np.ndarray:
    """Which of `rows` break no exclusion and match the explicit setting."""
    return _hard(_Picked(catalog, rows), slots)


def hard_set(catalog: Catalog, slots: Slots) -> RowSet:
    """Every track that breaks no exclusion and matches the explicit setting."""
    return _hard(_Whole(catalog), slots)


def soft_mask(catalog: Catalog, slots: Slots, rows: np.ndarray) -> np.ndarray:
    """Which of `rows` meet every preference: a wanted genre, all moods, an activity, tempo,
    era."""
    return _soft(_Picked(catalog, rows), slots)


def soft_set(catalog: Catalog, slots: Slots) -> RowSet:
    """Every track meeting every preference."""
    return _soft(_Whole(catalog), slots)


def _hard(view: _View[Mask], slots: Slots) -> Mask:
    ok = view.everything()
    for genre in slots.exclude_genres:
        ok &= ~view.slot("genre", genre)
    for mood in slots.exclude_moods:
        ok &= ~_slot(view, "mood", mood)
    if "vocals" in slots.exclude_attributes:
        ok &= view.instrumental()
    if slots.explicit is not None:
        ok &= view.explicit() if slots.explicit else ~view.explicit()
    return ok


def _soft(view: _View[Mask], slots: Slots) -> Mask:
    ok = view.everything()
    if slots.genres:
        ok &= functools.reduce(operator.or_, [view.slot("genre", g) for g in slots.genres])
    for mood in slots.moods:
        ok &= _slot(view, "mood", mood)
    if slots.activities:
        ok &= functools.reduce(operator.or_, [_slot(view, "activity", a) for a in slots.activities])
    if slots.tempo is not None:
        ok &= view.range("tempo", *slots.tempo)
    if slots.era is not None:
        ok &= view.range("year", *slots.era)
    if slots.artists:
        ok &= view.artists(slots.artists)
    return ok


def _artist_codes(catalog: Catalog, names: tuple[str, ...]) -> np.ndarray:
    index = catalog.artist_index
    return np.array([index[n] for n in names if n in index], dtype=np.int64)


def specificity(slots: Slots) -> int:
    """How many kinds of preference the slots set."""
    kinds = (slots.genres, slots.moods, slots.activities, slots.tempo, slots.era)
    return sum(bool(k) for k in (*kinds, slots.artists, slots.themes))


def _slot(view: _View[Mask], kind: str, name: str) -> Mask:
    try:
        return view.slot(kind, name)
    except CatalogError as exc:
        raise IntentError(str(exc)) from None


def _has_preferences(slots: Slots) -> bool:
    return bool(
        slots.genres or slots.moods or slots.activities or slots.tempo or slots.era or slots.artists
    )


def _has_exclusions(slots: Slots) -> bool:
    return bool(
        slots.exclude_genres
        or slots.exclude_moods
        or slots.exclude_attributes
        or slots.explicit is not None
    )


class Ranker:
    """Finds candidate tracks for a query vector and slots, then orders them."""

    def __init__(
        self,
        catalog: Catalog,
        index: TrackIndex,
        params: RankParams,
        playlist_prior: np.ndarray | None = None,
        cooccur: np.ndarray | None = None,
    ) -> None:
        self.catalog = catalog
        self.index = index
        self.params = params
        self.playlist_prior = playlist_prior
        self.cooccur = cooccur

    def candidates(
        self,
        query: np.ndarray,
        slots: Slots,
        n: int,
        votes: Votes | None = None,
        given: Sequence[int] = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosines of tracks worth ranking; hard constraints already applied.

        `query` is the encoder's vector; search and scoring happen in the index's projection.
        The content model's candidates are joined by the `title_candidates` best-voted
        tracks and by the `given` rows that meet the hard constraints.
        """
        projected = self._pull(self.index.project(query), slots)
        rows, sims = self._content(projected, slots, n)
        if len(given):
            rows, sims = self._join(rows, sims, np.asarray(given, dtype=np.int64), projected, slots)
        if votes is None or not votes.trust or not self.params.title_candidates:
            return rows, sims
        return self._join(rows, sims, votes.top(self.params.title_candidates), projected, slots)

    def _join(
        self, rows: np.ndarray, sims: np.ndarray, extra: np.ndarray, query: np.ndarray, slots: Slots
    ) -> tuple[np.ndarray, np.ndarray]:
        """`rows` joined by those of `extra` that meet the hard constraints and are new."""
        extra = extra[(extra >= 0) & (extra < len(self.catalog))]
        extra = extra[hard_mask(self.catalog, slots, extra)]
        extra = extra[~np.isin(extra, rows, kind="sort")]
        if not len(extra):
            return rows, sims
        extra_sims = self.index.vectors(extra) @ query
        return np.concatenate([rows, extra]), np.concatenate([sims, extra_sims])

    def _content(self, query: np.ndarray, slots: Slots, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The content model's candidates for a projected query.

        With filters, the share of the catalog they keep decides the plan: a small share is
        scored exactly (over-fetching would need most of the index), a large one is found by
        over-fetching from the index in proportion to how much the filters throw away.
        """
        p = self.params
        # hnswlib's cost follows its beam width (ef), not k: asking for up to ef neighbours
        # costs about what `candidates` does, and finds matches for more slot sets at once.
        rows, sims = self.index.search(query, max(p.candidates, self.index.ef_search))
        if not (_has_preferences(slots) or _has_exclusions(slots)):
            return rows, sims
        # Fast path: the nearest tracks already hold plenty that meet every slot. They are
        # then exactly the best such tracks, so no catalog-wide filtering is needed.
        ok = hard_mask(self.catalog, slots, rows)
        if np.count_nonzero(ok & soft_mask(self.catalog, slots, rows)) >= p.enough * n:
            return rows[ok], sims[ok]
        allowed = hard_set(self.catalog, slots)
        preferred = allowed & soft_set(self.catalog, slots)
        # Too few preferred tracks to fill the list: every allowed track may backfill.
        preferred_count = len(preferred)
        pool = preferred if preferred_count >= 2 * n else allowed
        matching = preferred_count if pool is preferred else len(allowed)
        if matching == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        k = min(p.max_fetch, math.ceil(p.candidates * len(self.catalog) / matching))
        if matching <= p.exact_limit:
            found = pool.rows()
            found_sims = self.index.vectors(found) @ query
            if len(found) > p.candidates:
                top = np.argpartition(-found_sims, p.candidates - 1)[: p.candidates]
                found, found_sims = found[top], found_sims[top]
        elif max(k, p.candidates) <= len(rows):  # the first search already went that far
            found, found_sims = rows[ok], sims[ok]
        else:
            found, found_sims = self.index.search(query, max(k, p.candidates))
            keep = allowed.contains(found)
            found, found_sims = found[keep], found_sims[keep]
        if pool is allowed and preferred_count:  # the few preferred must be ranked, wherever
            few = preferred.rows()
            few = few[~np.isin(few, found, assume_unique=True, kind="sort")]
            found = np.concatenate([found, few])
            found_sims = np.concatenate([found_sims, self.index.vectors(few) @ query])
        # The nearest allowed tracks always take part. (Sorting, not numpy's default lookup
        # table, which allocates one entry per catalog row: ~0.5 ms at 100k.)
        keep = ok & ~np.isin(rows, found, assume_unique=True, kind="sort")
        return np.concatenate([found, rows[keep]]), np.concatenate([found_sims, sims[keep]])

    def _pull(self, query: np.ndarray, slots: Slots) -> np.ndarray:
        """The projected query moved towards the named artists' tracks."""
        codes = _artist_codes(self.catalog, slots.artists)
        if not len(codes) or not self.params.artist_pull:
            return query
        rows = np.concatenate([self.catalog.artist_rows(int(c)) for c in codes])
        centroid = self.index.vectors(rows).mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        pulled = query + self.params.artist_pull * centroid
        pulled /= max(float(np.linalg.norm(pulled)), 1e-12)
        moved: np.ndarray = pulled.astype(np.float32)
        return moved

    def relevance(
        self,
        rows: np.ndarray,
        sims: np.ndarray,
        slots: Slots,
        votes: Votes | None = None,
        voted: np.ndarray | None = None,
    ) -> np.ndarray:
        """Cosine plus a popularity prior that fades with specificity, plus a theme bonus,
        plus the title model's trusted vote (`voted`: `votes.at(rows)`, if already known)."""
        p = self.params
        catalog = self.catalog
        fade = 1.0 + p.popularity_fade * specificity(slots)
        relevance = sims + (p.popularity_weight / fade) * catalog.popularity[rows] / 100.0
        if p.playlist_weight and self.playlist_prior is not None:
            relevance = relevance + (p.playlist_weight / fade) * self.playlist_prior[rows]
        for theme in slots.themes:
            relevance = relevance + p.theme_weight * catalog.theme_set(theme).contains(rows)
        if votes is not None and votes.trust:
            voted = votes.at(rows) if voted is None else voted
            relevance = relevance + p.title_weight * votes.trust * voted
            if p.cooccur_weight and self.cooccur is not None:
                together = self._together(self.cooccur, rows, votes)
                relevance = relevance + p.cooccur_weight * votes.trust * together
        return np.asarray(relevance, dtype=np.float32)

    def _together(self, factors: np.ndarray, rows: np.ndarray, votes: Votes) -> np.ndarray:
        """Each row's co-occurrence cosine to the vote-weighted mean of the best-voted tracks:
        how often listeners put it beside what they chose for such titles."""
        top = votes.top(self.params.cooccur_seeds)
        seeds = factors[top].astype(np.float32) * votes.at(top)[:, None]
        centre = seeds.sum(axis=0)
        norm = float(np.linalg.norm(centre))
        if not norm:
            return np.zeros(len(rows), dtype=np.float32)
        together: np.ndarray = factors[rows].astype(np.float32) @ (centre / norm)
        return together

    def rank(
        self, rows: np.ndarray, sims: np.ndarray, slots: Slots, n: int, votes: Votes | None = None
    ) -> tuple[list[int], list[float]]:
        """MMR over candidates, preferred tracks first, one version of a song, at most
        `max_per_artist` per artist (the artists a prompt names are not capped), and a list
        whose mean sound stays near the target profile."""
        p = self.params
        if len(rows) == 0:
            return [], []
        preferred = soft_mask(self.catalog, slots, rows)
        voted = votes.at(rows) if votes is not None and votes.trust else None
        if votes is not None and voted is not None:
            preferred |= votes.trust * voted >= p.title_preferred
        tier = (~preferred).astype(np.float32)
        relevance = self.relevance(rows, sims, slots, votes, voted)
        uncapped = _artist_codes(self.catalog, slots.artists)
        # Preferred first, then by relevance (|relevance| is far below the tier penalty).
        order = np.argsort(_TIER_PENALTY * tier - relevance.astype(np.float64), kind="stable")
        target = self.target_profile(rows[order[: p.profile_pool]])
        emphasis = p.sound_emphasis if slots.moods or slots.activities else 1.0
        # Diversity looks at a bounded pool first; wider pools, then a relaxed artist cap,
        # are only for lists that would otherwise come out short.
        # The wide pool is bounded too: over-fetching can bring thousands of candidates, and
        # diversity compares every pair.
        wide = min(len(order), max(p.candidates, 8 * n))
        pools: dict[int, _Pool] = {}
        for size, cap in (
            (min(max(round(p.pool * emphasis), 2 * n), wide), p.max_per_artist),
            (wide, p.max_per_artist),
            (wide, n),
        ):
            if size not in pools:  # the last two passes share one pool and its similarities
                pools[size] = self._pool(rows[order[:size]], order[:size])
            pool = pools[size]
            base = (1 - p.diversity) * relevance[pool.top] - _TIER_PENALTY * tier[pool.top]
            caps = np.where(np.isin(pool.artists, uncapped), n, cap) if len(uncapped) else cap
            chosen = self._mmr(base, pool, caps, target, n, p.profile_weight * emphasis)
            if len(chosen) == n or (size == wide and cap == n):
                break
        picked = pool.top[chosen]
        return rows[picked].tolist(), sims[picked].tolist()

    def target_profile(self, best: np.ndarray) -> np.ndarray:
        """The sound a list should have: the best candidates' mean audio features, drawn
        towards the catalog's popularity-weighted mean by `profile_prior`."""
        prior = self.params.profile_prior
        own = self.catalog.profile[best].mean(axis=0) if len(best) else self.catalog.profile_mean
        target: np.ndarray = (1 - prior) * own + prior * self.catalog.profile_mean
        return target.astype(np.float64)

    def _pool(self, rows: np.ndarray, top: np.ndarray) -> _Pool:
        vectors = self.index.vectors(rows)
        return _Pool(
            top=top,
            pairwise=vectors @ vectors.T,
            artists=self.catalog.artist_codes[rows],
            songs=self.catalog.song_codes[rows],
            profile=self.catalog.profile[rows].astype(np.float64),
        )

    def _mmr(
        self,
        base: np.ndarray,
        pool: _Pool,
        caps: np.ndarray | int,
        target: np.ndarray,
        n: int,
        profile_weight: float,
    ) -> list[int]:
        """Greedy MMR; `pool.pairwise` holds the candidates' cosine similarities.

        Each step picks the best score: relevance, minus the novelty penalty (its similarity
        to the closest chosen track), minus `profile_weight` times how far the list's mean
        audio features would lie from `target` with it. Judging the list's mean rather than
        each track lets a relevant track that sounds unlike the target in, balanced by
        others. A chosen track and every other version of its song (penalty +inf), and an
        artist at its cap (`caps`: per candidate, or one for all; relevance -inf), drop out
        of the pool at once rather than being skipped pick by pick.
        """
        # relevance − max(penalty, w) = min(relevance − penalty, relevance − w), exactly in
        # floating point too: so a running minimum over rows of relevance − weighted
        # penalty holds each candidate's best score so far, one numpy call per pick.
        relevance = base.astype(np.float64)
        after = pool.pairwise.astype(np.float64)  # after[pick]: each score once `pick` is in
        after *= -self.params.diversity
        after += relevance[None, :]
        # A pick's row is -inf at every version of its song (itself included), so the
        # running minimum drops them with the novelty penalty, in the same operation.
        if len(np.unique(pool.songs)) == len(pool.songs):
            np.fill_diagonal(after, -np.inf)
        else:
            after[pool.songs[:, None] == pool.songs[None, :]] = -np.inf
        best = relevance  # -inf once out
        # Each step's arrays are written in place: at ~60 candidates a step costs a few
        # numpy calls, and allocating their results is a good part of each.
        score = np.empty_like(relevance)
        # Features by row, so the per-candidate sum runs down four contiguous rows (numpy
        # adds them in the same order as along a row, so the sums are bit-identical).
        profile = np.ascontiguousarray(pool.profile.T)
        width = len(profile)
        spread = np.empty_like(profile)
        gap = np.empty_like(relevance)
        total = np.zeros(width, dtype=np.float64)
        owners = pool.artists.tolist()
        limits = [caps] * len(base) if isinstance(caps, int) else caps.tolist()
        per_artist: dict[int, int] = {}
        chosen: list[int] = []
        while len(chosen) < n:
            if profile_weight:
                # |(profile + total) / (k + 1) - target| summed, scaled once at the end.
                np.add(profile, (total - (len(chosen) + 1) * target)[:, None], out=spread)
                np.abs(spread, out=spread)
                np.add.reduce(spread, axis=0, out=gap)
                gap *= profile_weight / (width * (len(chosen) + 1))
                np.subtract(best, gap, out=score)
                pick = int(score.argmax())
            else:
                pick = int(best.argmax())
            if best[pick] == -np.inf:
                break
            chosen.append(pick)
            total += pool.profile[pick]
            artist = owners[pick]
            per_artist[artist] = per_artist.get(artist, 0) + 1
            if per_artist[artist] >= limits[pick]:
                best[pool.artists == artist] = -np.inf
            np.minimum(best, after[pick], out=best)
        return chosen


@dataclass(frozen=True)
class _Pool:
    """The candidates diversity chooses from, with what each pick is judged by."""

    top: np.ndarray  # positions in the ranker's candidate order
    pairwise: np.ndarray
    artists: np.ndarray
    songs: np.ndarray
    profile: np.ndarray  # catalog.PROFILE_FEATURES, one row per candidate
