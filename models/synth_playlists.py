"""Seeded synthetic playlists in the Million Playlist Dataset's slice format.

Simulated listeners, each with a taste drawn from the catalog (one or two genres, an era, a
mood or activity, a few favourite artists), write playlists the way people do: a theme from
their taste ("chill jazz", "90s rock", "summer 16", "workout", an artist), tracks mostly
from the catalog tracks that fit it, weighted by popularity, plus some favourites and some
noise, and a short, messy title that names the theme most of the time.

Playlists are made a block of `BLOCK` at a time, each block from its own seeded generator,
and streamed: a million playlists take no more memory than one block and one slice.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from models import vocab
from models.catalog import Catalog, StringColumn
from models.errors import CatalogError, ModelError

BLOCK = 1000  # playlists per seeded block: fixed, so the output never depends on slice size
VIBES = (*vocab.MOODS, *vocab.ACTIVITIES)  # a listener's mood or activity, by index
KINDS = ("genre", "vibe", "mix", "era", "decade", "year", "artist", "misc")
FAVOURITES = 5  # favourite-artist draws per listener (repeats make a stronger favourite)
GENERATED_ON = "1970-01-01 00:00:00"  # fixed, so the same playlists give the same bytes
_DICE = 24  # uniforms pre-drawn per playlist for its theme and title
_SEASONS = (("summer", 0.5, 152), ("spring", 0.7, 60), ("fall", 0.85, 244), ("winter", 1.0, 335))

T = TypeVar("T")


class SynthSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """How the simulated listeners write playlists."""

    kind_weights: tuple[float, ...] = (0.22, 0.16, 0.14, 0.08, 0.04, 0.08, 0.16, 0.12)
    """Chance of each theme kind, in the order of `KINDS`."""
    median_tracks: float = 52.0
    """Median playlist length (log-normal; the MPD's median is ~49, its mean ~66)."""
    length_sigma: float = 0.85
    """Spread of the log-normal length."""
    min_tracks: int = 5
    max_tracks: int = 250
    popularity_power: float = 2.0
    """A track is drawn with weight (popularity + 1) ** power."""
    source_shares: tuple[float, float, float, float] = (0.6, 0.2, 0.12, 0.08)
    """Share of slots drawn from the theme's tracks, its wider pool (the genre of a mix, an
    artist's genre), the listener's favourite artists, and the whole catalog."""
    oversample: float = 1.5
    """Slots drawn per track kept, before repeats are dropped."""
    min_pool: int = 5
    """Themes with fewer tracks than this fall back to a broader theme."""
    playlists_per_listener: float = 2.0
    """Mean playlists one listener writes (one after another)."""
    untitled: float = 0.07
    """Chance that a themed playlist's title says nothing of its theme."""
    typo: float = 0.06
    """Chance of a dropped, swapped or doubled letter in a title."""
    emoji: float = 0.1
    """Chance of an emoji after a title."""
    follower_tail: float = 2.0
    """Pareto shape of followers beyond the first (most playlists have one)."""


class ThemePools:
    """Every theme's candidate tracks in one array, with cumulative popularity keys.

    Segment s holds its rows at rows[start[s]:end[s]] and keys in (s, s + 1], so a single
    searchsorted draws every slot of a block at once, whatever theme each slot is for.
    Lookup tables hold -1 for themes with fewer than `min_pool` tracks.
    """

    def __init__(self, catalog: Catalog, popularity_power: float, min_pool: int) -> None:
        self._weights = (catalog.popularity.astype(np.float64) + 1.0) ** popularity_power
        self._min_pool = min_pool
        self._rows: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        genres = [catalog.has_genre(g) for g in catalog.genre_names]
        vibes = [catalog.slot_mask("mood", v.name) for v in vocab.MOODS]
        vibes += [catalog.slot_mask("activity", v.name) for v in vocab.ACTIVITIES]
        year = catalog.year.astype(np.int64)
        decade_of = np.where(year > 0, year // 10 * 10, 0)
        self.decades: list[int] = np.unique(decade_of[year > 0]).tolist()
        decades = [decade_of == d for d in self.decades]
        self.first_year = int(year[year > 0].min()) if (year > 0).any() else 0
        last_year = int(year.max())

        # Lookup tables are lists: themes are resolved one playlist at a time, in Python.
        self.all = self._add(np.ones(len(catalog), dtype=bool))
        self.genre = [self._add(g) for g in genres]
        self.vibe = [self._add(v) for v in vibes]
        self.decade = [self._add(d) for d in decades]
        years = range(self.first_year, last_year + 1) if self.first_year else range(0)
        self.year = [self._add((year >= y - 1) & (year <= y)) for y in years]
        self.genre_vibe = [[self._add(g & v) for v in vibes] for g in genres]
        self.genre_decade = [[self._add(g & d) for d in decades] for g in genres]
        self.artist_base = len(self._rows)
        self._add_artists(catalog.artist_codes.astype(np.int64))

        sizes = np.array([len(r) for r in self._rows], dtype=np.int64)
        self.end = np.cumsum(sizes)
        self.start = self.end - sizes
        self.rows = np.concatenate(self._rows).astype(np.int32)
        self.keys = np.concatenate(self._keys)
        self._rows, self._keys = [], []
        self.first_genre = _first_genres(catalog)
        self.vibe_bits = catalog.mood_bits.astype(np.int64) | (
            catalog.activity_bits.astype(np.int64) << len(vocab.MOODS)
        )
        # An artist's genre is the first genre of its first track.
        self.artist_genre: list[int] = self.first_genre[
            self.rows[self.start[self.artist_base :]]
        ].tolist()

    def _add(self, mask: np.ndarray) -> int:
        rows = np.flatnonzero(mask)
        if len(rows) < self._min_pool and self._rows:  # the whole catalog is always a pool
            return -1
        segment = len(self._rows)
        cumulative = np.cumsum(self._weights[rows])
        keys = segment + cumulative / cumulative[-1]
        keys[-1] = segment + 1.0
        self._rows.append(rows)
        self._keys.append(keys)
        return segment

    def _add_artists(self, codes: np.ndarray) -> None:
        # One segment per artist, all at once: there may be a hundred thousand of them.
        order = np.argsort(codes, kind="stable")
        counts = np.bincount(codes)
        ends = np.cumsum(counts)
        owner = np.repeat(np.arange(len(counts)), counts)
        cumulative = np.cumsum(self._weights[order])
        base = np.concatenate([[0.0], cumulative[ends[:-1] - 1]])
        local = (cumulative - base[owner]) / (cumulative[ends - 1] - base)[owner]
        local[ends - 1] = 1.0
        keys = self.artist_base + owner + local
        for a, b in zip((ends - counts).tolist(), ends.tolist(), strict=True):
            self._rows.append(order[a:b])
            self._keys.append(keys[a:b])

    @property
    def sizes(self) -> np.ndarray:
        """Tracks per segment."""
        sizes: np.ndarray = self.end - self.start
        return sizes

    def draw(self, segments: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """One popularity-weighted row from each segment, given a uniform in [0, 1) each."""
        at = np.searchsorted(self.keys, segments + uniforms, side="right")
        # segment + u may round up to segment + 1 for u within an ulp of 1.
        rows: np.ndarray = self.rows[np.minimum(at, self.end[segments] - 1)]
        return rows


def _first_genres(catalog: Catalog) -> np.ndarray:
    """Each track's first listed genre (an index into genre_names), -1 when it has none."""
    lists = catalog.table.column("genres").combine_chunks()
    first = np.full(len(catalog), -1, dtype=np.int64)
    flat = pc.list_flatten(lists)
    if len(flat) == 0:
        return first
    parents = pc.list_parent_indices(lists).to_numpy()
    codes = pc.index_in(flat, value_set=pa.array(catalog.genre_names, pa.string()))
    tracks, at = np.unique(parents, return_index=True)
    first[tracks] = codes.to_numpy()[at]
    return first


class _Dice:
    """A playlist's pre-drawn uniforms, used in turn (one numpy call per block, not per roll)."""

    __slots__ = ("_at", "_values")

    def __init__(self, values: list[float]) -> None:
        self._values = values
        self._at = 0

    def roll(self) -> float:
        value = self._values[self._at % len(self._values)]
        self._at += 1
        return value

    def chance(self, p: float) -> bool:
        return self.roll() < p

    def pick(self, options: Sequence[T]) -> T:
        return options[int(self.roll() * len(options))]


def _spellings() -> dict[str, tuple[str, ...]]:
    found: dict[str, list[str]] = {}
    for alias, genre in vocab.GENRE_ALIASES.items():
        found.setdefault(genre, []).append(alias)
    return {g: tuple(words) for g, words in found.items()}


_SPELLINGS = _spellings()
_FILLERS = ("songs", "mix", "playlist", "vibes", "music", "jams", "tunes", "hits")
_UNTITLED = (
    *("my playlist", "new playlist", "playlist", "favorites", "faves", "stuff", "random"),
    *("idk", "good songs", "songs", "music", "jams", "bops", "mood", "yes", "new", "old"),
    *("the best", "my mix", "🔥", "😎", "✨", "💯", "🎶"),
)
_EMOJI = ("🔥", "✨", "💯", "🎶", "😎", "❤️", "🙌", "👌")
_THEMED_EMOJI = {
    "workout": "💪",
    "running": "🏃",
    "party": "🎉",
    "sad": "😢",
    "happy": "😊",
    "calm": "🌙",
    "sleep": "😴",
    "romantic": "💕",
    "focus": "📚",
    "driving": "🚗",
    "summer": "☀️",
    "winter": "❄️",
}
_TEMPLATES = {
    "genre": ("{g}", "{g}", "{g} {f}", "best {g}", "my {g} {f}", "{g} {f}"),
    "vibe": ("{v}", "{v}", "{v} {f}", "{v} time", "{v} {f}"),
    "mix": ("{v} {g}", "{v} {g}", "{v} {g} {f}", "{g} {v}"),
    "mix activity": ("{g} {v}", "{v} {g}", "{g} {v} {f}", "{g} for {v}"),
    "era": ("{d} {g}", "{d} {g}", "{g} {d}", "{d} {g} {f}"),
    "decade": ("{d}", "{d} {f}", "throwback {d}", "{d} hits", "throwbacks"),
    "year": ("{s} {y}", "{s} {y}", "{s} {yy}", "{s} '{yy}", "{y}", "{y} {f}", "best of {y}"),
    "artist": ("{a}", "{a}", "{a} {f}", "best of {a}", "{a} radio", "all {a}"),
}


@dataclass(frozen=True)
class _Theme:
    """What one playlist is about: its kind, the segments its slots draw from, its subject."""

    kind: str
    primary: int
    backup: int
    genre: int = -1
    vibe: int = -1
    decade: int = -1  # an index into ThemePools.decades
    year: int = 0
    season: int = 0  # an index into _SEASONS
    artist: int = -1


def _resolve(
    pools: ThemePools, kind: str, taste: tuple[int, int, int, int, int, int], dice: _Dice
) -> _Theme:
    """The playlist theme of `kind` for a taste (genre, own genre, vibe, decade, year, artist),
    falling back to a broader kind when the catalog has too few tracks for it."""
    genre, own, vibe, decade, year, artist = taste
    p = pools
    while True:
        if kind == "genre":
            if genre >= 0 and p.genre[genre] >= 0:
                wide = p.genre_decade[genre][decade] if decade >= 0 else -1
                return _Theme(kind, p.genre[genre], _or(wide, p.genre[genre]), genre=genre)
            kind = "misc"
        elif kind == "vibe":
            if vibe >= 0 and p.vibe[vibe] >= 0:
                wide = p.genre_vibe[own][vibe] if own >= 0 else -1
                return _Theme(kind, p.vibe[vibe], _or(wide, p.vibe[vibe]), vibe=vibe)
            kind = "misc"
        elif kind == "mix":
            if vibe < 0 or genre < 0 or p.genre_vibe[genre][vibe] < 0:
                kind = "vibe" if genre < 0 else "genre"
            else:
                segment = p.genre_vibe[genre][vibe]
                return _Theme(kind, segment, p.genre[genre], genre=genre, vibe=vibe)
        elif kind == "era":
            if decade < 0 or genre < 0 or p.genre_decade[genre][decade] < 0:
                kind = "genre" if decade < 0 else "decade"
            else:
                segment = p.genre_decade[genre][decade]
                return _Theme(kind, segment, p.genre[genre], genre=genre, decade=decade)
        elif kind == "decade":
            if decade < 0 or p.decade[decade] < 0:
                kind = "genre"
            else:
                wide = p.genre_decade[own][decade] if own >= 0 else -1
                return _Theme(kind, p.decade[decade], _or(wide, p.decade[decade]), decade=decade)
        elif kind == "year":
            # "summer 1975" is not how people title old music; those become decades.
            segment = p.year[year - p.first_year] if year >= 2005 else -1
            if segment < 0:
                kind = "decade"
            else:
                roll = dice.roll()
                season = next(i for i, s in enumerate(_SEASONS) if roll < s[1])
                wide = p.genre[own] if own >= 0 else -1
                return _Theme(kind, segment, _or(wide, p.all), year=year, season=season)
        elif kind == "artist":
            wide = p.genre[p.artist_genre[artist]] if p.artist_genre[artist] >= 0 else -1
            return _Theme(kind, p.artist_base + artist, _or(wide, p.all), artist=artist)
        else:  # the listener's taste at large, under a title that says nothing of it
            primary = p.genre_vibe[own][vibe] if own >= 0 and vibe >= 0 else -1
            primary = _or(primary, _or(p.genre[own] if own >= 0 else -1, p.all))
            return _Theme("misc", primary, _or(p.genre[genre] if genre >= 0 else -1, p.all))


def _or(segment: int, fallback: int) -> int:
    return segment if segment >= 0 else fallback


class _Titles:
    """Short, messy playlist titles that name their theme most of the time."""

    def __init__(self, catalog: Catalog, pools: ThemePools, settings: SynthSettings) -> None:
        self._catalog = catalog
        self._pools = pools
        self._settings = settings

    def title(self, theme: _Theme, dice: _Dice) -> str:
        """The title a listener gives a playlist about `theme`."""
        if theme.kind == "misc" or dice.chance(self._settings.untitled):
            return self._mess(dice.pick(_UNTITLED), None, dice)
        words = {"f": dice.pick(_FILLERS)}
        if theme.genre >= 0:
            name = self._catalog.genre_names[theme.genre]
            words["g"] = name if dice.chance(0.75) else dice.pick(_SPELLINGS.get(name, (name,)))
        if theme.vibe >= 0:
            choices = VIBES[theme.vibe].words
            words["v"] = choices[0] if dice.chance(0.4) else dice.pick(choices)
        if theme.decade >= 0:
            words["d"] = dice.pick(_decade_words(self._pools.decades[theme.decade]))
        if theme.year:
            words |= {"y": str(theme.year), "yy": f"{theme.year % 100:02d}"}
            words["s"] = _SEASONS[theme.season][0]
        if theme.artist >= 0:
            row = self._pools.rows[self._pools.start[self._pools.artist_base + theme.artist]]
            words["a"] = self._catalog.artists.get([int(row)])[0]
        hint = VIBES[theme.vibe].name if theme.vibe >= 0 else words.get("s")
        kind = theme.kind
        if kind == "mix" and theme.vibe >= len(vocab.MOODS):
            kind = "mix activity"  # "rock for running", never "rock for sad"
        return self._mess(dice.pick(_TEMPLATES[kind]).format(**words), hint, dice)

    def _mess(self, text: str, hint: str | None, dice: _Dice) -> str:
        casing = dice.roll()
        if casing < 0.55:
            text = text.lower()
        elif casing < 0.75:
            text = " ".join(w[:1].upper() + w[1:] for w in text.split(" "))
        elif casing < 0.82:
            text = text.upper()
        else:
            text = text[:1].upper() + text[1:]
        if dice.chance(self._settings.typo):
            text = _typo(text, dice)
        if dice.chance(self._settings.emoji):
            themed = _THEMED_EMOJI.get(hint or "")
            text += " " + (themed if themed and dice.chance(0.6) else dice.pick(_EMOJI))
        elif dice.chance(0.04):
            text += dice.pick(("!", "!!", "!!!", "..."))
        return text


def _decade_words(decade: int) -> tuple[str, ...]:
    short = f"{decade % 100:02d}"
    if decade < 2000:
        return (f"{short}s", f"{short}s", f"{short}'s", f"{decade}s")
    return (f"{decade}s", f"{decade}s", f"{short}s")


def _typo(text: str, dice: _Dice) -> str:
    """One dropped, swapped or doubled letter inside one longer word."""
    words = text.split(" ")
    long = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not long:
        return text
    i = dice.pick(long)
    word = words[i]
    j = 1 + int(dice.roll() * (len(word) - 2))  # never the first or last letter
    kind = dice.roll()
    if kind < 0.45:
        word = word[:j] + word[j + 1 :]
    elif kind < 0.8:
        word = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    else:
        word = word[:j] + word[j] + word[j:]
    words[i] = word
    return " ".join(words)


class _Listeners:
    """Simulated listeners writing playlists over one catalog, a seeded block at a time."""

    def __init__(self, catalog: Catalog, settings: SynthSettings) -> None:
        self._catalog = catalog
        self._s = settings
        self._pools = pools = ThemePools(catalog, settings.popularity_power, settings.min_pool)
        self._titles = _Titles(catalog, pools, settings)
        self._albums = StringColumn(catalog.table.column("album").combine_chunks())
        self._durations = catalog.table.column("duration_ms").to_numpy()
        # Index -1 (no genre) and genres too small to draw from both mean the whole catalog.
        self._genre_segment = np.array([_or(g, pools.all) for g in pools.genre] + [pools.all])
        self._decades = np.array(pools.decades, dtype=np.int64)
        weights = np.asarray(settings.kind_weights, dtype=np.float64)
        self._kind_p = weights / weights.sum()
        shares = np.asarray(settings.source_shares, dtype=np.float64)
        self._source_edges = np.cumsum(shares / shares.sum())[:-1]
        last = max(2017, int(catalog.year.max()))
        self._t0 = datetime(2010, 1, 1, tzinfo=UTC).timestamp()
        self._t1 = datetime(last, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()

    def block(self, rng: np.random.Generator, first_pid: int, n: int) -> list[dict[str, Any]]:
        """`n` playlists with pids from `first_pid`, drawn from `rng` alone."""
        s, pools = self._s, self._pools
        new = rng.random(n) < 1.0 / s.playlists_per_listener
        new[0] = True
        listener = np.cumsum(new) - 1
        tastes = self._tastes(rng, int(listener[-1]) + 1)
        kinds = rng.choice(len(KINDS), size=n, p=self._kind_p).tolist()
        dice = rng.random((n, _DICE)).tolist()
        lengths = rng.lognormal(np.log(s.median_tracks), s.length_sigma, n)
        lengths = np.clip(np.rint(lengths), s.min_tracks, s.max_tracks).astype(np.int64)
        followers = 1 + np.minimum(np.floor(rng.pareto(s.follower_tail, n)), 10**5)
        modified = (self._t0 + (self._t1 - self._t0) * np.sqrt(rng.random(n))).tolist()

        genre1, genre2, vibe, decade, year, favourite = tastes
        themes: list[_Theme] = []
        titles: list[str] = []
        for i, who in enumerate(listener.tolist()):
            roll = _Dice(dice[i])
            genre = genre1[who] if roll.chance(0.65) else genre2[who]
            artist = favourite[who][int(roll.roll() * FAVOURITES)]
            taste = (genre, genre1[who], vibe[who], decade[who], year[who], artist)
            theme = _resolve(pools, KINDS[kinds[i]], taste, roll)
            themes.append(theme)
            titles.append(self._titles.title(theme, roll))
            modified[i] = self._modified(theme, modified[i], roll)

        primary = np.array([t.primary for t in themes], dtype=np.int64)
        backup = np.array([t.backup for t in themes], dtype=np.int64)
        # An artist's playlist is mostly that artist: no longer than its tracks allow.
        artist = np.array([t.kind == "artist" for t in themes])
        cap = np.maximum(s.min_tracks, (1.5 * pools.sizes[primary]).astype(np.int64) + 3)
        lengths = np.where(artist, np.minimum(lengths, cap), lengths)
        favourites = pools.artist_base + np.asarray(favourite, dtype=np.int64)[listener]
        rows, positions, counts = self._tracks(rng, primary, backup, favourites, lengths)
        tracks = self._records(rows, positions)
        ends = np.cumsum(counts).tolist()
        return [
            {
                "name": titles[i],
                "collaborative": "false",
                "pid": first_pid + i,
                "modified_at": int(modified[i]),
                "num_tracks": end - begin,
                "num_followers": int(followers[i]),
                "tracks": tracks[begin:end],
            }
            for i, (begin, end) in enumerate(zip([0, *ends[:-1]], ends, strict=True))
        ]

    def _modified(self, theme: _Theme, drawn: float, dice: _Dice) -> float:
        """When a playlist was last changed: "summer 16" that summer, "2020s" after 2020."""
        if theme.year >= 2010:
            start = datetime(theme.year, 1, 1, tzinfo=UTC).timestamp()
            return min(self._t1, start + 86400 * (_SEASONS[theme.season][2] + 90 * dice.roll()))
        decade = self._pools.decades[theme.decade] if theme.decade >= 0 else 0
        if decade > 2010:
            start = datetime(decade, 1, 1, tzinfo=UTC).timestamp()
            return max(drawn, start + (self._t1 - start) * dice.roll())
        return drawn

    def _tastes(self, rng: np.random.Generator, m: int) -> tuple[list[Any], ...]:
        """Per listener: two genres (often the same), a vibe, a decade, a year, favourites.

        A taste is anchored on a popularity-weighted track, so popular genres, eras and
        the moods their tracks have are common tastes, as they are among real listeners.
        """
        pools = self._pools
        everything = np.full(m, pools.all, dtype=np.int64)
        anchor = pools.draw(everything, rng.random(m))
        genre1 = pools.first_genre[anchor]
        other = pools.first_genre[pools.draw(everything, rng.random(m))]
        genre2 = np.where(rng.random(m) < 0.5, genre1, other)
        year = self._catalog.year[anchor].astype(np.int64)
        at = np.searchsorted(self._decades, year // 10 * 10)
        known = (year > 0) & (at < len(self._decades))
        decade = np.where(known, at, -1)
        bits = (pools.vibe_bits[anchor, None] >> np.arange(len(VIBES))) & 1
        priority = np.where(bits == 1, rng.random(bits.shape), -1.0)
        vibe = np.where(bits.any(axis=1), priority.argmax(axis=1), -1)
        liked = np.where(rng.random((m, FAVOURITES)) < 0.7, genre1[:, None], genre2[:, None])
        rows = pools.draw(self._genre_segment[liked].ravel(), rng.random(m * FAVOURITES))
        favourite = self._catalog.artist_codes[rows].astype(np.int64).reshape(m, FAVOURITES)
        return tuple(a.tolist() for a in (genre1, genre2, vibe, decade, year, favourite))

    def _tracks(
        self,
        rng: np.random.Generator,
        primary: np.ndarray,
        backup: np.ndarray,
        favourites: np.ndarray,
        lengths: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows, positions and per-playlist counts: slots drawn for the whole block at once,
        repeats within a playlist dropped, the first `length` distinct tracks kept."""
        n = len(lengths)
        slots = np.ceil(lengths * self._s.oversample).astype(np.int64) + 10
        owner = np.repeat(np.arange(n), slots)
        total = len(owner)
        source = np.searchsorted(self._source_edges, rng.random(total), side="right")
        liked = favourites[owner, rng.integers(0, FAVOURITES, total)]
        segment = np.choose(source, [primary[owner], backup[owner], liked, self._pools.all])
        rows = self._pools.draw(segment, rng.random(total))
        key = owner * len(self._catalog) + rows
        order = np.argsort(key, kind="stable")  # stable: the first slot of a repeat wins
        first = np.ones(total, dtype=bool)
        first[1:] = key[order][1:] != key[order][:-1]
        keep = np.empty(total, dtype=bool)
        keep[order] = first
        kept = np.flatnonzero(keep)
        kept_owner = owner[kept]
        positions = np.arange(len(kept)) - np.searchsorted(kept_owner, np.arange(n))[kept_owner]
        wanted = positions < lengths[kept_owner]
        counts = np.bincount(kept_owner[wanted], minlength=n)
        return rows[kept[wanted]], positions[wanted], counts

    def _records(self, rows: np.ndarray, positions: np.ndarray) -> list[dict[str, Any]]:
        """MPD track records, each distinct row's strings decoded once per block."""
        unique, inverse = np.unique(rows, return_inverse=True)
        catalog = self._catalog
        uris = ["spotify:track:" + i for i in catalog.id_strings.get(unique)]
        artists, titles = catalog.artists.get(unique), catalog.titles.get(unique)
        albums, durations = self._albums.get(unique), self._durations[unique].tolist()
        return [
            {
                "pos": pos,
                "artist_name": artists[j],
                "track_uri": uris[j],
                "track_name": titles[j],
                "duration_ms": durations[j],
                "album_name": albums[j],
            }
            for pos, j in zip(positions.tolist(), inverse.tolist(), strict=True)
        ]


def synthetic_playlists(
    catalog: Catalog, n_playlists: int, seed: int, settings: SynthSettings | None = None
) -> Iterator[dict[str, Any]]:
    """`n_playlists` MPD playlists (pids 0..n-1) over `catalog`; the same arguments always
    give the same playlists. Themes are prepared now, playlists made as they are read."""
    if n_playlists < 0:
        raise ValueError("n_playlists must not be negative")
    if len(catalog) == 0:
        raise CatalogError("cannot write playlists over an empty catalog")
    listeners = _Listeners(catalog, settings or SynthSettings())

    def playlists() -> Iterator[dict[str, Any]]:
        for block, first in enumerate(range(0, n_playlists, BLOCK)):
            rng = np.random.default_rng([seed, block])
            yield from listeners.block(rng, first, min(BLOCK, n_playlists - first))

    return playlists()


@dataclass
class WriteReport:
    """What `write_slices` wrote."""

    files: list[Path] = field(default_factory=list)
    playlists: int = 0
    tracks: int = 0


_GZIP_LEVEL = 3  # level 6 doubles the time of a compressed write for ~15 % smaller files


def write_slices(
    playlists: Iterable[dict[str, Any]],
    out: Path,
    slice_size: int = 1000,
    *,
    generated_on: str = GENERATED_ON,
) -> WriteReport:
    """Write MPD slices: `mpd.slice.<a>-<b>.json` files in folder `out` (older slices there
    removed), or one file when `out` ends in .json or .json.gz. Each file appears whole."""
    if slice_size < 1:
        raise ValueError("slice_size must be positive")
    out = Path(out)
    report = WriteReport()
    try:
        if out.name.endswith((".json", ".json.gz")):
            _write_file(playlists, out, slice_size, generated_on, report)
        else:
            _write_folder(playlists, out, slice_size, generated_on, report)
    except OSError as exc:
        raise ModelError(f"{out}: cannot write playlists: {exc}") from exc
    return report


def _batches(playlists: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for playlist in playlists:
        batch.append(playlist)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _span(batch: Sequence[dict[str, Any]]) -> str:
    return f"{batch[0]['pid']}-{batch[-1]['pid']}"


def _info(span: str, generated_on: str) -> dict[str, str]:
    return {"generated_on": generated_on, "slice": span, "version": "synthetic"}


def _count(batch: Sequence[dict[str, Any]], report: WriteReport) -> None:
    report.playlists += len(batch)
    report.tracks += sum(p["num_tracks"] for p in batch)


def _write_folder(
    playlists: Iterable[dict[str, Any]],
    folder: Path,
    size: int,
    generated_on: str,
    report: WriteReport,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    encoder = msgspec.json.Encoder()
    for batch in _batches(playlists, size):
        span = _span(batch)
        path = folder / f"mpd.slice.{span}.json"
        data = encoder.encode({"info": _info(span, generated_on), "playlists": batch})
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        report.files.append(path)
        _count(batch, report)
    written = set(report.files)
    for stale in sorted(folder.glob("mpd.slice.*.json")):
        if stale not in written:
            stale.unlink()


def _write_file(
    playlists: Iterable[dict[str, Any]],
    path: Path,
    size: int,
    generated_on: str,
    report: WriteReport,
) -> None:
    # The info names the pid span, known only at the end: the playlists go to a temporary
    # body first. Compressed, the three parts are gzip members, which readers concatenate.
    compressed = path.name.endswith(".gz")
    path.parent.mkdir(parents=True, exist_ok=True)
    encoder = msgspec.json.Encoder()
    first = last = None
    with tempfile.TemporaryFile(dir=path.parent) as body:
        sink: io.BufferedIOBase = (
            gzip.GzipFile(filename="", mode="wb", fileobj=body, compresslevel=_GZIP_LEVEL, mtime=0)
            if compressed
            else body
        )
        for batch in _batches(playlists, size):
            if first is not None:
                sink.write(b",")
            first = batch[0]["pid"] if first is None else first
            last = batch[-1]["pid"]
            sink.write(encoder.encode(batch)[1:-1])
            _count(batch, report)
        if compressed:
            sink.close()
        span = f"{first}-{last}" if first is not None else ""
        head = b'{"info":' + encoder.encode(_info(span, generated_on)) + b',"playlists":['
        tail = b"]}"
        if compressed:
            head, tail = gzip.compress(head, mtime=0), gzip.compress(tail, mtime=0)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with tmp.open("wb") as final:
            final.write(head)
            body.seek(0)
            shutil.copyfileobj(body, final, 1 << 20)
            final.write(tail)
        os.replace(tmp, path)
    report.files.append(path)
