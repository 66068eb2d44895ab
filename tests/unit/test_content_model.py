"""The content model: composed track vectors, artists, eras and themes in prompts, ranking."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

from models.artists import ArtistMatcher, fold_name
from models.catalog import Catalog, table_from_rows
from models.descriptors import DEFAULT_PART_WEIGHTS, descriptor_parts, embed_texts, track_vectors
from models.encoder import FakeEncoder
from models.generator import PlaylistGenerator
from models.intent import IntentParser, Slots, parser_for
from models.ranker import RankParams, specificity
from models.songs import song_key
from models.tracktext import song_codes

FEATURES = {
    "energy": 0.5,
    "valence": 0.5,
    "danceability": 0.5,
    "acousticness": 0.5,
    "instrumentalness": 0.0,
    "speechiness": 0.05,
    "tempo": 110.0,
    "loudness": -8.0,
}


def _row(track_id: str, title: str, artist: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": track_id,
        "title": title,
        "artist": artist,
        "album": extra.pop("album", ""),
        "genres": extra.pop("genres", ["pop"]),
        "tags": extra.pop("tags", []),
        **FEATURES,
        "explicit": False,
        "duration_ms": 200_000,
        "popularity": extra.pop("popularity", 50),
        "year": extra.pop("year", 2015),
    }
    row.update(extra)
    return row


def test_versions_of_one_song_share_a_code() -> None:
    """Remasters, mixes, live takes and credits fold to one song; other songs stay apart, as
    the benchmark's judge of repeats has it."""
    titles = [
        "Bohemian Rhapsody",
        "Bohemian Rhapsody - 2011 Mix",
        "Bohemian Rhapsody - Remastered 2011",
        "Bohemian Rhapsody (Live at Wembley)",
        "Bohemian rhapsody!",
        "Killer Queen",
        "Bohemian Rhapsody",
    ]
    artists = ["Queen"] * 6 + ["Someone Else"]
    catalog = Catalog(
        table_from_rows(
            [_row(f"t{i}", t, a) for i, (t, a) in enumerate(zip(titles, artists, strict=True))]
        )
    )
    codes = song_codes(catalog.table).tolist()
    assert len(set(codes[:5])) == 1
    assert codes[5] != codes[0]
    assert codes[6] != codes[0]
    judged = [song_key(t, a) for t, a in zip(titles, artists, strict=True)]
    assert [judged.index(k) for k in judged] == [codes.index(c) for c in codes]


def test_tracks_of_one_artist_genre_and_mood_stay_distinguishable() -> None:
    """Same artist, genre, features and year, other titles: the title's words tell them apart."""
    rows = [_row(f"t{i}", title, "Ann Lee") for i, title in enumerate(["Blue River", "Red Fire"])]
    catalog = Catalog(table_from_rows(rows))
    parts = descriptor_parts(catalog)
    encoder = FakeEncoder()
    vectors = {p: embed_texts(encoder, t, progress=False) for p, t in parts.texts.items() if t}
    weights = {p: w for p, w in DEFAULT_PART_WEIGHTS.items() if p in vectors}
    (_start, block), *_ = track_vectors(vectors, parts, weights, jitter=0.0, seed=1)
    assert float(block[0] @ block[1]) < 0.9999
    for row, words in enumerate(["blue river", "red fire"]):
        scores = block @ encoder.encode([words])[0]
        assert int(np.argmax(scores)) == row
    assert np.allclose(np.linalg.norm(block, axis=1), 1.0, atol=1e-5)


def test_tags_and_words_are_parts_of_a_track() -> None:
    """Editorial tags and title/album words (stopwords and numbers dropped) are described."""
    rows = [
        _row("a", "The Christmas Song - 2011 Remaster", "Nat", album="Holiday 1999", tags=["Xmas"]),
        _row("b", "Song", "Nat", tags=[]),
    ]
    parts = descriptor_parts(Catalog(table_from_rows(rows))).parts
    words = parts["words"]
    first = {words.texts[c] for c in words.codes[words.offsets[0] : words.offsets[1]]}
    assert first == {"christmas", "song", "holiday"}
    tags = parts["tags"]
    assert [tags.texts[c] for c in tags.codes[tags.offsets[0] : tags.offsets[1]]] == ["Xmas"]
    assert tags.offsets[2] == tags.offsets[1]  # the second track has no tag


@pytest.fixture(scope="module")
def matcher() -> ArtistMatcher:
    names = ["Drake", "Taylor Swift", "Coldplay", "Adele", "Chill", "The Weeknd", "Tiny Act"]
    popularity = np.array([90, 95, 80, 85, 70, 88, 1], dtype=np.float32)
    return ArtistMatcher(names, popularity, blocked=["chill"])


@pytest.mark.parametrize(
    ("prompt", "artists"),
    [
        ("drake", ("Drake",)),
        ("DRAKE", ("Drake",)),
        ("taylor swift songs", ("Taylor Swift",)),
        ("like coldplay", ("Coldplay",)),
        ("adelle", ("Adele",)),  # a typo, matched fuzzily
        ("weeknd", ("The Weeknd",)),
        ("drake and adele", ("Drake", "Adele")),
        ("chill", ()),  # a mood word, though an artist bears the name
        ("tiny", ()),
        ("rainy day jazz", ()),
    ],
)
def test_artist_names_are_found_in_prompts(
    matcher: ArtistMatcher, prompt: str, artists: tuple[str, ...]
) -> None:
    """Exact names over word n-grams, typos fuzzily; ordinary words never."""
    assert matcher.find(prompt) == artists


def test_fuzzy_artist_lookup_scores_only_names_that_could_pass_and_misses_nothing() -> None:
    """Typos of names of many lengths: the lookup, which scores only names of a length that
    can reach the cutoff, finds a name of the same score as a scan of every name does."""
    from rapidfuzz import fuzz, process

    rng = np.random.default_rng(7)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    names = [
        " ".join("".join(rng.choice(letters, rng.integers(3, 9))) for _ in range(words))
        for words in rng.integers(1, 4, 400)
    ]
    matcher = ArtistMatcher(names, rng.random(len(names)) * 100)
    everyone = [fold_name(name) for name in names if len(fold_name(name)) >= 5]
    found = 0
    for name in names[:150]:
        typo = list(fold_name(name))
        for _ in range(int(rng.integers(0, 3))):  # up to two letters dropped or doubled
            at = int(rng.integers(len(typo)))
            typo[at : at + 1] = [] if rng.random() < 0.5 else [typo[at]] * 2
        text = "".join(typo).strip()
        best = process.extractOne(text, everyone, scorer=fuzz.ratio, score_cutoff=88.0)
        got = matcher.find(text)
        if best is None or len(text) < 5:
            continue
        assert got, text
        found += 1
        assert fuzz.ratio(text, fold_name(got[0])) == best[1], text
    assert found > 50  # most typos are close enough to match
    assert matcher._fuzzy_near(10) != matcher._fuzzy  # and most names are never scored


def test_fold_name_ignores_case_accents_and_the() -> None:
    """Folded names compare equal across spellings."""
    assert fold_name("The Beatles") == fold_name("beatles")
    assert fold_name("Beyoncé") == "beyonce"
    assert fold_name("Simon & Garfunkel") == "simon and garfunkel"


@pytest.fixture(scope="module")
def era_parser() -> IntentParser:
    return IntentParser(latest_year=2020)


@pytest.mark.parametrize(
    ("prompt", "era"),
    [
        ("Best of 2016", (2015, 2016)),
        ("summer 16", (2015, 2016)),
        ("Summer '17", (2016, 2017)),
        ("summer2015", (2014, 2015)),
        ("'90s", (1990, 1999)),
        ("nineties rock", (1990, 1999)),
        ("oldies", (1950, 1979)),
        ("throwback", (2000, 2012)),
        ("old school", (1985, 2005)),
        ("new music", (2019, 2020)),
        ("1990-1999 hits", None),
        ("120 bpm", None),
    ],
)
def test_eras_in_every_common_form(
    era_parser: IntentParser, prompt: str, era: tuple[int, int] | None
) -> None:
    """Years, seasons' years, decades in digits and words, and era words become eras."""
    assert era_parser.parse(prompt).slots.era == era


@pytest.mark.parametrize(
    ("prompt", "themes"),
    [
        ("christmas", ("christmas",)),
        ("xmas party", ("christmas",)),
        ("summer 17", ("summer",)),
        ("halloween", ("halloween",)),
        ("no christmas", ()),
        ("jazz", ()),
    ],
)
def test_seasons_and_holidays_are_themes(
    era_parser: IntentParser, prompt: str, themes: tuple[str, ...]
) -> None:
    """Holidays and seasons are read even though no slot holds them; negated ones are not."""
    assert era_parser.parse(prompt).slots.themes == themes


def test_words_real_titles_use_are_moods_and_activities(era_parser: IntentParser) -> None:
    """Title words such as "chillin", "work out" and "fiesta" are slots; slang whose
    playlists do not sound like the mood ("lit": less energetic than most) is left to the
    encoder."""
    assert era_parser.parse("lit").slots.moods == ()
    assert era_parser.parse("chillin").slots.moods == ("calm",)
    assert era_parser.parse("work out").slots.activities == ("workout",)
    assert era_parser.parse("fiesta").slots.activities == ("party",)


def test_an_artist_prompt_gets_that_artist_beyond_the_cap(
    fake_generator: PlaylistGenerator,
) -> None:
    """Naming an artist fills the list with their tracks first; the artist cap spares them."""
    catalog = fake_generator.catalog
    counts = np.bincount(catalog.artist_codes)
    code = int(np.argmax(counts))
    name = catalog.artist_names[code]
    intent = parser_for(catalog).parse(f"{name} songs")
    assert intent.slots.artists == (name,)
    n = min(10, int(counts[code]))
    playlist, _ = fake_generator.generate(intent, n)
    assert Counter(catalog.artists.get(playlist.rows))[name] == n


def test_a_typo_still_finds_the_artist(fake_generator: PlaylistGenerator) -> None:
    """One wrong letter in a popular artist's name still names them."""
    catalog = fake_generator.catalog
    code = int(np.argmax(catalog.artist_popularity))
    name = catalog.artist_names[code]
    typo = name[:2] + name[3:]
    assert parser_for(catalog).parse(typo).slots.artists == (name,)


def test_a_typo_beside_slot_words_is_not_taken_for_an_artist(matcher: ArtistMatcher) -> None:
    """Fuzzy names are for prompts nothing else explains; exact names are found anywhere."""
    name = "Seventeen Orchestral Cathedral Ensemble"
    parser = IntentParser(artists=[name, "Adele"], artist_popularity=np.array([80.0, 90.0]))
    typo = "seventeen orchestal cathedral ensembel"
    assert parser.parse(typo).slots.artists == (name,)
    # Close enough to the name even with the genre in, but "jazz" explains part of the
    # prompt, and the rest is not the name.
    assert ArtistMatcher([name], np.array([90.0])).find(f"jazz {typo}") == (name,)
    beside = parser.parse(f"jazz {typo}")
    assert beside.slots.genres == ("jazz",)
    assert beside.slots.artists == ()
    assert parser.parse(f"jazz {name}").slots.artists == (name,)
    assert parser.parse("adele for studying").slots.artists == ("Adele",)
    assert matcher.find("adelle", fuzzy=False) == ()
    assert matcher.find("adele", fuzzy=False) == ("Adele",)


def test_popularity_fades_as_prompts_get_specific(fake_generator: PlaylistGenerator) -> None:
    """The popularity bonus shrinks with every kind of preference a prompt sets."""
    ranker = fake_generator.ranker
    rows = np.array([0, 1, 2])
    sims = np.zeros(3, dtype=np.float32)
    params = RankParams(profile_weight=0.0)
    ranker = type(ranker)(fake_generator.catalog, ranker.index, params)
    loose = ranker.relevance(rows, sims, Slots())
    tight = ranker.relevance(rows, sims, Slots(genres=("jazz",), moods=("calm",)))
    assert specificity(Slots(genres=("jazz",), moods=("calm",), era=(1990, 1999))) == 3
    popularity = fake_generator.catalog.popularity[rows]
    assert np.allclose(loose, params.popularity_weight * popularity / 100, atol=1e-6)
    assert np.allclose(tight, loose / (1 + 2 * params.popularity_fade), atol=1e-6)


@pytest.mark.parametrize(
    "title",
    ["!!!", "🔥🔥🔥", "2016", "a", "the", "ñ", "summer16", "<url>", "x" * 400, "no no no", "90's"],
)
def test_no_title_crashes_or_empties_the_answer(
    fake_generator: PlaylistGenerator, title: str
) -> None:
    """Odd real-world titles give a full list of distinct songs."""
    catalog = fake_generator.catalog
    playlist, _ = fake_generator.generate(parser_for(catalog).parse(title), 30)
    assert len(playlist.rows) == 30
    assert len(set(catalog.song_codes[list(playlist.rows)].tolist())) == 30


def test_embedding_on_several_workers_keeps_every_text_in_its_row() -> None:
    encoder = FakeEncoder()
    texts = [f"artist {i} and band {i % 7}" for i in range(300)]  # three runs of 128 at batch 2
    alone = embed_texts(encoder, texts, batch_size=2, progress=False)
    shared = embed_texts(encoder, texts, batch_size=2, progress=False, workers=2)
    assert np.array_equal(alone, shared)
    assert np.array_equal(shared[123], encoder.encode([texts[123]])[0])


@pytest.mark.parametrize(
    ("kind", "name"), [("mood", "calm"), ("mood", "energetic"), ("activity", "workout")]
)
def test_a_sound_prompt_lists_closer_to_the_target_sound(
    fake_generator: PlaylistGenerator, kind: str, name: str
) -> None:
    """A mood's or activity's preferred candidates sit inside its audio predicate; with
    `sound_emphasis` the list draws on a wider pool and its mean sound comes nearer the
    target, while prompts without a mood or activity rank as before."""
    catalog = fake_generator.catalog
    rows = np.flatnonzero(catalog.slot_mask(kind, name, np.arange(len(catalog))))
    assert len(rows) >= 200
    # The most relevant candidates are the most acoustic: the list drifts unless pulled.
    rows = rows[np.argsort(-catalog.profile[rows, 3], kind="stable")][:200]
    sims = np.linspace(0.9, 0.5, len(rows), dtype=np.float32)
    slots = Slots(moods=(name,)) if kind == "mood" else Slots(activities=(name,))

    def ranked(emphasis: float, slots: Slots) -> tuple[set[int], float, set[int]]:
        params = RankParams(sound_emphasis=emphasis)
        ranker = type(fake_generator.ranker)(catalog, fake_generator.ranker.index, params)
        chosen, _ = ranker.rank(rows, sims, slots, 30)
        order = np.argsort(-ranker.relevance(rows, sims, slots), kind="stable")
        target = ranker.target_profile(rows[order[: params.profile_pool]])
        gap = float(np.abs(catalog.profile[chosen].mean(axis=0) - target).sum())
        return set(chosen), gap, set(rows[order[: params.pool]].tolist())

    plain, plain_gap, first_pool = ranked(1.0, slots)
    pulled, pulled_gap, _ = ranked(2.0, slots)
    assert len(pulled - first_pool) > len(plain - first_pool)  # the wider pool is drawn on
    assert pulled_gap < plain_gap
    assert ranked(1.0, Slots())[0] == ranked(2.0, Slots())[0]
