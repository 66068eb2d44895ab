"""Ranking: hard exclusions, preferences first, artist cap, diversity, fingerprints, fallbacks."""

from __future__ import annotations

from collections import Counter

import msgspec
import numpy as np
import pytest

from models.errors import IntentError
from models.generator import PlaylistGenerator
from models.intent import IntentParser, Slots
from models.ranker import (
    Playlist,
    Ranker,
    RankParams,
    hard_mask,
    hard_set,
    soft_mask,
    soft_set,
)


def _tracks(gen: PlaylistGenerator, playlist: Playlist) -> list[dict[str, object]]:
    return gen.catalog.tracks(playlist.rows)


@pytest.mark.parametrize(
    "prompt",
    [
        "jazz, no vocals",
        "anything but rock or pop",
        "nothing sad, clean hip hop",
        "calm piano without classical",
        "no electronic, no techno, no house",
    ],
)
def test_exclusions_are_never_violated(
    fake_generator: PlaylistGenerator, parser: IntentParser, prompt: str
) -> None:
    """No track in the playlist breaks an exclusion or the explicit setting."""
    intent = parser.parse(prompt)
    playlist, _ = fake_generator.generate(intent, 50)
    assert len(playlist.rows) == 50
    assert hard_mask(fake_generator.catalog, intent.slots, np.array(playlist.rows)).all()


def test_preferred_tracks_come_first(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """Tracks meeting every preference precede any backfill (artist cap off)."""
    gen = fake_generator
    ranker = Ranker(gen.catalog, gen.ranker.index, RankParams(max_per_artist=1000))
    intent = parser.parse("happy jazz")
    available = len(soft_set(gen.catalog, intent.slots))
    n = available + 10  # more than the preferred tracks, so backfill must happen
    vector = gen.encoder.encode([intent.query_text])[0]
    ranked, _ = ranker.rank(*ranker.candidates(vector, intent.slots, n), intent.slots, n)
    met = soft_mask(gen.catalog, intent.slots, np.array(ranked)).tolist()
    assert met == [True] * available + [False] * 10


def test_artist_cap(fake_generator: PlaylistGenerator, parser: IntentParser) -> None:
    """No artist appears more than max_per_artist times."""
    playlist, _ = fake_generator.generate(parser.parse("energetic rock for the gym"), 60)
    artists = Counter(t["artist"] for t in _tracks(fake_generator, playlist))
    assert max(artists.values()) <= fake_generator.params.max_per_artist


def test_artist_cap_relaxes_rather_than_shorten(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """When capped artists cannot fill the length, the cap gives way and n is still met."""
    gen = fake_generator
    rows = np.flatnonzero(
        gen.catalog.artist_codes == np.bincount(gen.catalog.artist_codes).argmax()
    )
    sims = np.linspace(0.9, 0.5, len(rows)).astype(np.float32)
    ranked, _ = gen.ranker.rank(rows, sims, Slots(), min(len(rows), 5))
    assert len(ranked) == min(len(rows), 5)


def test_diversity_spreads_the_list(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """With diversity on, the list is less self-similar than pure relevance order."""
    gen = fake_generator
    intent = parser.parse("chill acoustic evening")
    plain = PlaylistGenerator(
        catalog=gen.catalog,
        index=gen.ranker.index,
        encoder=gen.encoder,
        fallbacks=gen.fallbacks,
        version=gen.version,
        params=RankParams(diversity=0.0, max_per_artist=100),
    )

    def self_similarity(playlist: Playlist) -> float:
        v = gen.ranker.index.vectors(np.array(playlist.rows))
        sims = v @ v.T
        return float(sims[np.triu_indices(len(v), 1)].mean())

    assert self_similarity(gen.generate(intent, 30)[0]) < self_similarity(
        plain.generate(intent, 30)[0]
    )


def test_selective_filters_use_exact_search(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """A filter keeping few tracks still fills the list with matching tracks."""
    intent = parser.parse("sad disco from the 2010s")
    playlist, _ = fake_generator.generate(intent, 10)
    met = soft_mask(fake_generator.catalog, intent.slots, np.array(playlist.rows))
    available = len(soft_set(fake_generator.catalog, intent.slots))
    assert met.sum() == min(10, available)


def test_over_fetch_when_filters_keep_many(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """With exact search disabled, over-fetching still returns only allowed tracks."""
    gen = fake_generator
    ranker = Ranker(gen.catalog, gen.ranker.index, RankParams(exact_limit=0))
    intent = parser.parse("pop, no vocals")
    vector = gen.encoder.encode([intent.query_text])[0]
    rows, _ = ranker.candidates(vector, intent.slots, 30)
    assert len(rows) > 0
    assert hard_mask(gen.catalog, intent.slots, rows).all()


def test_impossible_filters_give_an_empty_list(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """When no track can satisfy the exclusions, the playlist is empty, not wrong."""
    genres = fake_generator.catalog.genre_names
    intent = parser.parse("", Slots(exclude_genres=genres))
    playlist, _ = fake_generator.generate(intent, 10)
    assert playlist.rows == ()


def test_fingerprint_names_the_list_and_version(fake_generator: PlaylistGenerator) -> None:
    """Same ids and version → same fingerprint; order or version changes it."""
    cat = fake_generator.catalog
    a = Playlist.of(cat, [1, 2, 3], [0.9, 0.8, 0.7], "v1")
    assert a.fingerprint == Playlist.of(cat, [1, 2, 3], [0.5, 0.5, 0.5], "v1").fingerprint
    assert a.fingerprint != Playlist.of(cat, [2, 1, 3], [0.9, 0.8, 0.7], "v1").fingerprint
    assert a.fingerprint != Playlist.of(cat, [1, 2, 3], [0.9, 0.8, 0.7], "v2").fingerprint


def test_generation_is_deterministic(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """The same intent gives byte-identical playlists."""
    intent = parser.parse("late night drive synthwave")
    first, timings = fake_generator.generate(intent, 30)
    second, _ = fake_generator.generate(intent, 30)
    assert msgspec.json.encode(first) == msgspec.json.encode(second)
    assert {"encode", "search", "rank"} <= set(timings)


@pytest.mark.parametrize("n", [0, -1, 101])
def test_length_bounds(fake_generator: PlaylistGenerator, parser: IntentParser, n: int) -> None:
    """Lengths outside 1..max_length are refused."""
    with pytest.raises(IntentError, match="length"):
        fake_generator.generate(parser.parse("jazz"), n)


def test_fallback_matches_slots_and_exclusions(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """Fallback lists follow the first slot, respect exclusions and are flagged degraded."""
    intent = parser.parse("jazz without vocals")
    playlist = fake_generator.fallback(intent, 20)
    assert playlist.degraded
    assert len(playlist.rows) == 20
    assert hard_mask(fake_generator.catalog, intent.slots, np.array(playlist.rows)).all()
    tracks = _tracks(fake_generator, playlist)
    assert sum("jazz" in t["genres"] for t in tracks) >= 1
    assert len(set(playlist.rows)) == 20


@pytest.mark.parametrize("prompt", ["happy country no vocals", "k-pop, no vocals"])
def test_selective_exclusions_still_fill_the_list(
    fake_generator: PlaylistGenerator, parser: IntentParser, prompt: str
) -> None:
    """When few tracks meet the preferences, other allowed tracks backfill to full length."""
    intent = parser.parse(prompt)
    rows = np.array(fake_generator.generate(intent, 30)[0].rows)
    assert len(rows) == 30
    assert hard_mask(fake_generator.catalog, intent.slots, rows).all()
    preferred = soft_set(fake_generator.catalog, intent.slots)
    allowed = hard_set(fake_generator.catalog, intent.slots)
    met = soft_mask(fake_generator.catalog, intent.slots, rows)
    assert met.sum() == min(30, len(preferred & allowed))


def test_explicit_only_fills_the_list(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """explicit=True keeps only explicit tracks and still fills the list when enough exist."""
    intent = parser.parse("jazz", Slots(explicit=True))
    rows = list(fake_generator.generate(intent, 30)[0].rows)
    assert len(rows) == min(30, int(fake_generator.catalog.explicit.sum()))
    assert fake_generator.catalog.explicit[rows].all()


@pytest.mark.parametrize("n", [2.5, True, "3"])
def test_length_must_be_an_integer(
    fake_generator: PlaylistGenerator, parser: IntentParser, n: object
) -> None:
    """Non-integer lengths are refused rather than producing an unbounded list."""
    with pytest.raises(IntentError, match="length"):
        fake_generator.generate(parser.parse("jazz"), n)  # type: ignore[arg-type]


def test_unknown_slot_values_from_code_raise_intent_error(
    fake_generator: PlaylistGenerator,
) -> None:
    """Slots built without the parser still fail with IntentError, not StopIteration."""
    slots = Slots(exclude_moods=("Happy",))
    with pytest.raises(IntentError, match="Happy"):
        hard_set(fake_generator.catalog, slots)
    with pytest.raises(IntentError, match="Happy"):
        hard_mask(fake_generator.catalog, slots, np.arange(5))


@pytest.mark.parametrize(
    ("prompt", "given"),
    [
        ("happy jazz for the gym", None),
        ("slow rock, no pop", None),
        ("80s chill songs without vocals", Slots(explicit=False)),
        ("120 bpm sad metal or punk, anything but country", Slots(explicit=True)),
    ],
)
def test_catalog_wide_sets_match_row_masks(
    fake_generator: PlaylistGenerator, parser: IntentParser, prompt: str, given: Slots | None
) -> None:
    """The packed catalog-wide filters keep exactly the tracks the row masks keep."""
    catalog = fake_generator.catalog
    slots = parser.parse(prompt, given).slots
    every = np.arange(len(catalog))
    assert not slots.is_empty()
    np.testing.assert_array_equal(hard_set(catalog, slots).mask(), hard_mask(catalog, slots, every))
    np.testing.assert_array_equal(soft_set(catalog, slots).mask(), soft_mask(catalog, slots, every))
