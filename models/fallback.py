"""Fallback playlists: precomputed per slot value at build time, served when the model fails.

They need neither the encoder nor the index: popular tracks matching one slot value, artist
capped, filtered at serve time by the request's hard constraints.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from models import vocab
from models.catalog import Catalog
from models.intent import Slots
from models.ranker import Playlist, hard_mask

POPULAR = "popular"


class FallbackPlaylists(msgspec.Struct, frozen=True):
    """Catalog rows per `kind:value` (mood, activity, genre) plus an overall popular list."""

    lists: dict[str, list[int]]

    @classmethod
    def build(cls, catalog: Catalog, length: int, max_per_artist: int) -> FallbackPlaylists:
        """Top tracks by popularity for every slot value the catalog has."""
        masks: dict[str, np.ndarray] = {POPULAR: np.ones(len(catalog), dtype=bool)}
        for i, mood in enumerate(vocab.MOODS):
            masks[f"mood:{mood.name}"] = (catalog.mood_bits >> i & 1).astype(bool)
        for i, activity in enumerate(vocab.ACTIVITIES):
            masks[f"activity:{activity.name}"] = (catalog.activity_bits >> i & 1).astype(bool)
        for genre in catalog.genre_names:
            masks[f"genre:{genre}"] = catalog.has_genre(genre)
        lists = {}
        for name, mask in masks.items():
            rows = np.flatnonzero(mask)
            rows = rows[np.argsort(-catalog.popularity[rows], kind="stable")]
            lists[name] = _cap_artists(
                rows, catalog.artist_codes, catalog.song_codes, length, max_per_artist
            )
        return cls(lists)

    def save(self, path: Path) -> None:
        path.write_bytes(msgspec.json.encode(self))

    @classmethod
    def load(cls, path: Path) -> FallbackPlaylists:
        return msgspec.json.decode(path.read_bytes(), type=cls)

    def pick(self, catalog: Catalog, slots: Slots, n: int, version: str) -> Playlist:
        """A degraded playlist: the first slot value with a list, then popular tracks."""
        names = [f"genre:{g}" for g in slots.genres] + [f"mood:{m}" for m in slots.moods]
        names += [f"activity:{a}" for a in slots.activities] + [POPULAR]
        rows: list[int] = []
        for name in names:
            candidates = np.array(self.lists.get(name, []), dtype=np.int64)
            if len(candidates) == 0:
                continue
            candidates = candidates[hard_mask(catalog, slots, candidates)]
            songs = {int(catalog.song_codes[r]) for r in rows}
            fresh = [int(r) for r in candidates if int(catalog.song_codes[r]) not in songs]
            rows += list(dict.fromkeys(fresh))[: n - len(rows)]
            if len(rows) >= n:
                break
        scores = (catalog.popularity[rows] / 100.0).tolist() if rows else []
        return Playlist.of(catalog, rows, scores, version, degraded=True)


def _cap_artists(
    rows: np.ndarray, artists: np.ndarray, songs: np.ndarray, length: int, cap: int
) -> list[int]:
    """The first `length` rows with at most `cap` per artist and one version of each song."""
    out: list[int] = []
    seen: dict[int, int] = {}
    songs_seen: set[int] = set()
    for row in rows:
        artist, song = int(artists[row]), int(songs[row])
        if seen.get(artist, 0) < cap and song not in songs_seen:
            songs_seen.add(song)
            seen[artist] = seen.get(artist, 0) + 1
            out.append(int(row))
            if len(out) == length:
                break
    return out
