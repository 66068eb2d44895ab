"""The parser reads real wordings: spelled-out years, synonyms, fillers, and one canonical
key for prompts whose slots and content words are the same."""

from __future__ import annotations

import pytest

from models.intent import IntentParser, content_words


@pytest.fixture(scope="module")
def parser() -> IntentParser:
    return IntentParser(latest_year=2024)


@pytest.mark.parametrize(
    ("prompt", "era"),
    [
        ("best of twenty sixteen", (2015, 2016)),
        ("nineteen ninety nine party", (1998, 1999)),
        ("two thousand and eight hits", (2007, 2008)),
        ("twenty twenty one", (2020, 2021)),
        ("nineties rock", (1990, 1999)),
        ("eighties", (1980, 1989)),
        ("twenty five songs for running", None),  # a count, not a year
    ],
)
def test_spelled_out_years_and_decades(
    parser: IntentParser, prompt: str, era: tuple[int, int] | None
) -> None:
    assert parser.parse(prompt).slots.era == era


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("meditation ambient", "ambient music for meditation"),
        ("breakup songs", "songs for getting over a breakup"),
        ("workout", "gym playlist"),
        ("Workout Mix", "workout"),
        ("lofi beats", "lo-fi beats"),
        ("chill vibes", "chill music"),
        ("rainy sunday morning jazz", "jazz for a rainy sunday morning"),
        ("heartbreak", "breakup songs"),
        ("oldies", "the oldies"),
        ("nineties hits", "90s"),
        ("1990s rock", "90s rock"),
        ("christmas", "Christmas songs"),
        ("bbq party", "barbecue party anthems"),
        ("rainy nights", "rainy night"),
    ],
)
def test_wordings_of_one_request_share_one_key(parser: IntentParser, a: str, b: str) -> None:
    first, second = parser.parse(a), parser.parse(b)
    assert first.slots == second.slots
    assert first.key("v1", 30) == second.key("v1", 30)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("jazz", "no jazz"),
        ("rainy day", "rainy night"),
        ("80s synthwave", "90s synthwave"),
        ("fast rock", "slow rock"),
        ("summer songs", "winter songs"),
        ("road trip", "beach trip"),
    ],
)
def test_different_requests_keep_apart(parser: IntentParser, a: str, b: str) -> None:
    assert parser.parse(a).key("v1", 30) != parser.parse(b).key("v1", 30)


def test_content_words_fold_fillers_plurals_and_synonyms() -> None:
    assert content_words("the best songs for a barbeque on sunday nights") == (
        "barbecue",
        "night",
        "sunday",
    )
    assert content_words("") == ()
    assert content_words("<email> bus") == ("bus",)  # masks and "-us" words stay whole


def test_an_intent_made_by_hand_is_keyed_by_its_text(parser: IntentParser) -> None:
    from models.intent import Intent, Slots

    parsed = parser.parse("jazz")
    by_hand = Intent(text="jazz", query_text="jazz", slots=parsed.slots)
    other = Intent(text="jazz standards", query_text="jazz standards", slots=parsed.slots)
    assert by_hand.key("v1") != other.key("v1")
    assert by_hand.slots == Slots(genres=("jazz",))
