"""GET query strings reduce canonically to one request; bad ones say what is wrong."""

from __future__ import annotations

import pytest

from edge.errors import BadRequest
from edge.query import parse_query
from models import vocab
from models.intent import IntentParser

PARSER = IntentParser()


def _key(raw: str) -> str:
    request = parse_query(raw.encode(), genres=PARSER.genres, default_length=30, max_length=100)
    return PARSER.parse(request.prompt, request.slots).key("v1", request.n)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("q=jazz&mood=calm", "mood=calm&q=jazz"),
        ("mood=calm&mood=happy", "mood=happy,calm"),
        ("mood=Calm", "mood=calm"),
        ("q=Rainy++Sunday%20JAZZ", "q=rainy%20sunday%20jazz"),
        ("genre=hip%20hop", "genre=hip-hop"),
        ("q=jazz", "q=jazz&n=30"),
        ("exclude=jazz,vocals", "exclude=vocals&exclude=jazz"),
        ("tempo=120", "tempo=110-130"),
        ("exclude=explicit", "explicit=false"),
    ],
)
def test_equivalent_queries_share_a_key(a: str, b: str) -> None:
    """Order, repetition, commas, case, spacing and defaults do not split the cache."""
    assert _key(a) == _key(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("q=jazz", "q=jazz&n=10"), ("q=jazz", "q=jazz&exclude=vocals"), ("mood=calm", "mood=sad")],
)
def test_different_requests_get_different_keys(a: str, b: str) -> None:
    assert _key(a) != _key(b)


def test_slots_map_to_the_intent() -> None:
    raw = b"q=focus&genre=jazz&exclude=rock,sad,vocals&tempo=slow&explicit=false&n=12"
    request = parse_query(raw, genres=PARSER.genres, default_length=30, max_length=100)
    assert request.n == 12
    assert request.slots is not None
    assert request.slots.genres == ("jazz",)
    assert request.slots.exclude_genres == ("rock",)
    assert request.slots.exclude_moods == ("sad",)
    assert request.slots.exclude_attributes == ("vocals",)
    assert request.slots.tempo == vocab.TEMPO_WORDS["slow"]
    assert request.slots.explicit is False


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"genres=jazz", "unknown parameter"),
        (b"q=a&q=b", "given 2 times"),
        (b"n=0", "n must be"),
        (b"n=101", "n must be"),
        (b"n=-3", "n must be"),
        (b"tempo=fastish", "tempo"),
        (b"tempo=400", "within"),
        (b"explicit=maybe", "true or false"),
        (b"exclude=polka-dubstep", "cannot exclude"),
        (b"q=%ff%fe", "UTF-8"),
        (b"q=%00", "control character"),
        (b"q=a%1bb", "control character"),
        (b"exclude=explicit&explicit=true", "contradictory"),
        (b"mood=" + b",".join([b"calm"] * 17), "at most"),
        (b"q=" + b"a" * 5000, "limit"),
    ],
)
def test_bad_queries_are_refused_with_a_reason(raw: bytes, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        parse_query(raw, genres=PARSER.genres, default_length=30, max_length=100)
