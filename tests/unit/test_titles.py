"""The title model: title keys, aggregation, votes, trust for cold prompts, files, and the
generator's blend of votes with the content model."""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest

from models.encoder import FakeEncoder
from models.errors import ArtifactError, CorpusError
from models.generator import PlaylistGenerator
from models.intent import IntentParser
from models.titles import (
    Example,
    TitleModel,
    TitleSettings,
    Votes,
    catalog_rows,
    learn,
    title_key,
)

ENCODER = FakeEncoder()
TRACKS = 50


def _embed(keys: list[str]) -> np.ndarray:
    return ENCODER.encode(keys)


def _model(examples: list[Example], **settings: float) -> TitleModel:
    return learn(
        examples,
        TRACKS,
        _embed,
        msgspec.structs.replace(TitleSettings(), **settings),
        progress=False,
    )


def _rows(*rows: int) -> np.ndarray:
    return np.array(rows, dtype=np.int64)


@pytest.mark.parametrize(
    ("title", "key"),
    [
        ("Workout Mix", "workout"),
        ("  CHILL vibes 🌴🌴", "chill vibes"),
        ("Café del Mar!!", "cafe del mar"),
        ("my playlist", "my playlist"),  # nothing but fillers: the folded title stays
        ("Best of 2016", "best 2016"),
    ],
)
def test_title_key_folds_case_accents_emoji_punctuation_and_fillers(title: str, key: str) -> None:
    assert title_key(title) == key


def test_titles_with_one_key_pool_their_playlists() -> None:
    """Two spellings of one title become one key; a track in both playlists counts twice."""
    model = _model([Example("Road Trip", _rows(1, 2)), Example("road trip!", _rows(2, 3))])
    assert model.keys == ["road trip"]
    assert model.playlists.tolist() == [2]
    span = slice(model.indptr[0], model.indptr[1])
    weights = dict(zip(model.rows[span].tolist(), model.weights[span].tolist(), strict=True))
    assert weights == {1: 1.0, 2: 2.0, 3: 1.0}
    assert model.rows[span][0] == 2  # the strongest track first
    assert model.track_playlists[[1, 2, 3, 4]].tolist() == [1.0, 2.0, 1.0, 0.0]


def test_each_title_keeps_its_strongest_tracks_only() -> None:
    examples = [Example("jazz", _rows(*range(10))), Example("jazz", _rows(0, 1, 2))]
    model = _model(examples, max_tracks=3)
    assert sorted(model.rows.tolist()) == [0, 1, 2]


def test_negative_weights_take_weight_away_and_empty_titles_drop() -> None:
    """A rejection cancels a track; a title whose every track was rejected is gone."""
    examples = [
        Example("focus", _rows(1, 2)),
        Example("focus", _rows(2), np.array([-1.0])),
        Example("noise", _rows(5), np.array([-2.0])),
    ]
    model = _model(examples)
    assert model.keys == ["focus"]
    assert model.rows.tolist() == [1]


@pytest.mark.parametrize(
    ("example", "message"),
    [
        (Example("x", _rows(TRACKS)), "outside the catalog"),
        (Example("x", _rows(-1)), "outside the catalog"),
        (Example("x", _rows(1, 2), np.array([1.0])), "weights"),
        (Example("x", _rows(1), np.array([np.nan])), "not finite"),
    ],
)
def test_bad_examples_are_refused_by_name(example: Example, message: str) -> None:
    with pytest.raises(CorpusError, match=message):
        _model([example])


def test_a_corpus_without_catalog_tracks_is_refused() -> None:
    with pytest.raises(CorpusError, match="no training title"):
        _model([Example("empty", _rows())])


def test_the_nearest_title_votes_most_and_a_far_prompt_gets_no_trust() -> None:
    examples = [
        Example("summer road trip", _rows(1, 2, 3)),
        Example("sad rainy night", _rows(7, 8, 9)),
    ]
    model = _model(examples, cold=0.3, warm=0.9)
    [near] = model.votes(ENCODER.encode(["summer road trip"]))
    assert near.trust == 1.0
    assert set(near.top(3).tolist()) == {1, 2, 3}
    assert near.at(_rows(1, 7, 40)).tolist()[0] == 1.0
    assert near.at(_rows(40)).tolist() == [0.0]
    [cold] = model.votes(ENCODER.encode(["zzz qqq"]))
    assert cold.trust == 0.0
    assert not len(cold.rows)


def test_trust_rises_linearly_between_cold_and_warm() -> None:
    model = _model([Example("x y", _rows(1))], cold=0.0, warm=1.0)
    [half] = model.votes(ENCODER.encode(["x z"]))  # about 0.5: one word of two shared
    sim = float(ENCODER.encode(["x z"])[0] @ ENCODER.encode(["x y"])[0])
    assert half.trust == pytest.approx(sim, abs=1e-5)
    assert 0 < half.trust < 1


def test_damping_lets_a_close_rare_title_outvote_a_common_one() -> None:
    common = [Example("party hits", _rows(1)) for _ in range(16)]
    rare = [Example("party anthems", _rows(2))]
    prompt = ENCODER.encode(["party anthems"])
    [undamped] = _model(common + rare, damping=0.0, power=1.0).votes(prompt)
    [damped] = _model(common + rare, damping=1.0, power=1.0).votes(prompt)
    assert undamped.top(1).tolist() == [1]
    assert damped.top(1).tolist() == [2]


def test_votes_are_batched() -> None:
    model = _model([Example("jazz", _rows(1)), Example("metal", _rows(2))])
    jazz, metal = model.votes(ENCODER.encode(["jazz", "metal"]))
    assert jazz.top(1).tolist() == [1]
    assert metal.top(1).tolist() == [2]


def test_saved_models_load_the_same_and_corrupt_ones_are_refused(tmp_path: Path) -> None:
    model = _model([Example("jazz", _rows(1, 2)), Example("metal", _rows(3))])
    names = model.save(tmp_path)
    again = TitleModel.load(tmp_path, ENCODER.dim, model.settings, TRACKS)
    assert again.keys == model.keys
    for vector in ENCODER.encode(["jazz", "metal", "jazz metal"]):
        [a], [b] = model.votes(vector), again.votes(vector)
        assert a.rows.tolist() == b.rows.tolist()
        assert a.scores.tolist() == b.scores.tolist()
    with pytest.raises(ArtifactError, match="disagree"):
        TitleModel.load(tmp_path, ENCODER.dim, model.settings, TRACKS - 10)  # another catalog
    (tmp_path / names[0]).write_bytes(b"not an npz")
    with pytest.raises(ArtifactError, match="cannot load"):
        TitleModel.load(tmp_path, ENCODER.dim, model.settings, TRACKS)


def test_playlist_prior_is_log_scaled_to_one() -> None:
    model = _model([Example("a", _rows(1, 2)), Example("b", _rows(1)), Example("c", _rows(1))])
    prior = model.playlist_prior
    assert prior[1] == pytest.approx(1.0)
    assert 0 < prior[2] < prior[1]
    assert prior[3] == 0


def test_no_votes_score_nothing() -> None:
    none = Votes.none()
    assert none.trust == 0
    assert none.at(_rows(1, 2)).tolist() == [0.0, 0.0]
    assert none.top(5).tolist() == []


# --- the blend in the miss path ---------------------------------------------------------


def _with_titles(generator: PlaylistGenerator, titles: TitleModel | None) -> PlaylistGenerator:
    return PlaylistGenerator(
        catalog=generator.catalog,
        index=generator.ranker.index,
        encoder=generator.encoder,
        fallbacks=generator.fallbacks,
        version=generator.version,
        params=generator.params,
        titles=titles,
    )


def test_listeners_tracks_for_a_title_lead_a_prompt_that_says_it(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """Tracks the content model would not pick for "sunday brunch" come first once listeners'
    "sunday brunch" playlists hold them; an unrelated prompt is unchanged."""
    catalog = fake_generator.catalog
    intent = parser.parse("sunday brunch")
    content, _ = fake_generator.generate(intent, 20)
    chosen = [r for r in range(len(catalog)) if r not in set(content.rows)][::97][:12]
    examples = [Example("Sunday Brunch", np.array(chosen)) for _ in range(5)]
    titles = learn(examples, len(catalog), ENCODER.encode, progress=False)
    learned = _with_titles(fake_generator, titles)
    playlist, timings = learned.generate(intent, 20)
    assert "titles" in timings
    assert len(set(playlist.rows) & set(chosen)) >= 10
    other = parser.parse("heavy metal")
    assert learned.generate(other, 20)[0].rows == fake_generator.generate(other, 20)[0].rows


def test_hard_constraints_hold_for_voted_tracks(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    catalog = fake_generator.catalog
    explicit = np.flatnonzero(catalog.explicit)[:20]
    titles = learn(
        [Example("party", explicit) for _ in range(3)], len(catalog), ENCODER.encode, progress=False
    )
    playlist, _ = _with_titles(fake_generator, titles).generate(parser.parse("clean party"), 20)
    assert len(playlist.rows) == 20
    assert parser.parse("clean party").slots.explicit is False
    assert not catalog.explicit[list(playlist.rows)].any()


def test_co_occurrence_lifts_what_listeners_put_beside_the_voted_tracks(
    fake_generator: PlaylistGenerator, parser: IntentParser
) -> None:
    """With votes trusted, a candidate whose co-occurrence vector matches the best-voted
    tracks' gains relevance; one with an orthogonal vector does not."""
    catalog = fake_generator.catalog
    voted = np.arange(10)
    titles = learn([Example("sunday brunch", voted)], len(catalog), ENCODER.encode, progress=False)
    factors = np.zeros((len(catalog), 2), dtype=np.float16)
    factors[voted] = (1.0, 0.0)
    factors[100] = (1.0, 0.0)  # goes with the voted tracks
    factors[200] = (0.0, 1.0)  # does not
    learned = _with_titles(fake_generator, titles)
    ranker = type(learned.ranker)(
        catalog, learned.ranker.index, learned.params, learned.ranker.playlist_prior, factors
    )
    [votes] = titles.votes(ENCODER.encode(["sunday brunch"]))
    rows, sims = _rows(100, 200), np.zeros(2, dtype=np.float32)
    plain = learned.ranker.relevance(rows, sims, parser.parse("sunday brunch").slots, votes)
    lifted = ranker.relevance(rows, sims, parser.parse("sunday brunch").slots, votes)
    assert lifted[0] - plain[0] == pytest.approx(learned.params.cooccur_weight, rel=1e-3)
    assert lifted[1] == pytest.approx(plain[1])


def test_catalog_rows_maps_ids_in_order_and_unknown_ids_to_minus_one(
    fake_generator: PlaylistGenerator,
) -> None:
    catalog = fake_generator.catalog
    lookup = catalog_rows(catalog)
    ids = catalog.id_strings.get([5, 0, 17])
    assert lookup([*ids, "no-such-track"]).tolist() == [5, 0, 17, -1]
    assert lookup([]).tolist() == []
