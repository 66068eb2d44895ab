"""Intent parsing: normalisation, PII masking, slot extraction, canonical keys."""

from __future__ import annotations

import pytest

from models.errors import IntentError
from models.intent import MAX_PROMPT_CHARS, IntentParser, Slots, mask_pii, normalize


@pytest.fixture(scope="module")
def parser() -> IntentParser:
    return IntentParser(genres=["Shoegaze"])


def test_normalize_folds_width_case_and_space() -> None:
    """NFKC, casefold and whitespace collapsing make visually equal prompts identical."""
    assert normalize("  Ｊａｚｚ\u3000FOR\tStudying\u200b ") == "jazz for studying"


def test_invisible_characters_do_not_split_words() -> None:
    """Zero-width and soft-hyphen characters vanish instead of becoming spaces."""
    assert normalize("ja\u200bzz j\u00adazz") == "jazz jazz"
    assert normalize("a\x00b") == "a b"


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("mail me at bob.smith+x@example.co.uk please", "mail me at <email> please"),
        ("like https://open.example.com/track/1?a=b", "like <url>"),
        ("from www.mixes.net or djmix.fm/set", "from <url> or <url>"),
        ("for @dj_kat tonight", "for <handle> tonight"),
        ("call +1 (555) 123-4567 now", "call <phone> now"),
        ("card 4111111111111111", "card <phone>"),
        ("order 12345678", "order <phone>"),
        ("call 555-1234", "call 555-1234"),
        ("watch youtu.be/dQw4w9WgXcQ now", "watch <url> now"),
        ("see bit.ly/abc123", "see <url>"),
        ("music from 1990-1999", "music from 1990-1999"),
        ("top 100 2010 hits", "top 100 2010 hits"),
        ("120 - 130 bpm", "120 - 130 bpm"),
        ("80s and 90s", "80s and 90s"),
        ("code 123456x", "code <number>x"),
    ],
)
def test_mask_pii(raw: str, masked: str) -> None:
    """Emails, URLs, handles, phone numbers and long digit runs are masked; tempos are not."""
    assert mask_pii(raw) == masked


def test_pii_never_reaches_intent(parser: IntentParser) -> None:
    """The intent's text, query and canonical bytes carry no raw PII."""
    intent = parser.parse("jazz for jane@doe.com call 555 123 4567")
    for field in (intent.text, intent.query_text, intent.canonical().decode()):
        assert "jane@doe.com" not in field
        assert "4567" not in field
    assert "<email>" in intent.text


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            "rainy sunday morning jazz",
            Slots(moods=("calm",), activities=("dinner",), genres=("jazz",)),
        ),
        ("no vocals, deep focus", Slots(activities=("focus",), exclude_attributes=("vocals",))),
        ("instrumental jazz", Slots(genres=("jazz",), exclude_attributes=("vocals",))),
        ("instrumentals for focus", Slots(activities=("focus",), exclude_attributes=("vocals",))),
        ("anything but country", Slots(exclude_genres=("country",))),
        ("without jazz or blues", Slots(exclude_genres=("blues", "jazz"))),
        ("upbeat 80s pop", Slots(moods=("happy",), genres=("pop",), era=(1980, 1989))),
        ("2010s hip-hop", Slots(genres=("hip hop",), era=(2010, 2019))),
        ("slow songs", Slots(tempo=(0.0, 95.0))),
        ("fast techno", Slots(genres=("techno",), tempo=(125.0, 300.0))),
        ("running at 170 bpm", Slots(activities=("running",), tempo=(160.0, 180.0))),
        (
            "clean rap for the gym",
            Slots(activities=("workout",), genres=("hip hop",), explicit=False),
        ),
        ("nothing sad", Slots(exclude_moods=("sad",))),
        ("pop but no explicit lyrics", Slots(genres=("pop",), explicit=False)),
        ("low energy lofi", Slots(moods=("calm",), genres=("lo-fi",))),
        ("shoegaze", Slots(genres=("shoegaze",))),
        (
            "jazz not rock for studying",
            Slots(activities=("focus",), genres=("jazz",), exclude_genres=("rock",)),
        ),
        ("no vocals jazz piano", Slots(genres=("jazz", "piano"), exclude_attributes=("vocals",))),
        ("no jazz/blues", Slots(exclude_genres=("blues", "jazz"))),
        ("without jazz, rock please", Slots(genres=("rock",), exclude_genres=("jazz",))),
        ("no-nonsense rock", Slots(genres=("rock",))),
        ("non-stop party rock", Slots(activities=("party",), genres=("rock",))),
        ("music at 295 bpm", Slots(tempo=(285.0, 300.0))),
    ],
)
def test_slots_from_text(parser: IntentParser, prompt: str, expected: Slots) -> None:
    """Free text yields moods, activities, genres, exclusions, tempo, era and explicit."""
    assert parser.parse(prompt).slots == expected


def test_excluded_words_leave_the_encoder_query(parser: IntentParser) -> None:
    """The encoder sees what is wanted, so "no jazz" does not pull towards jazz."""
    intent = parser.parse("chill evening, no jazz")
    assert "jazz" not in intent.query_text
    assert intent.query_text == "chill evening"  # content words, in a fixed order


def test_slots_only_request_gets_a_query(parser: IntentParser) -> None:
    """A request with slots and no text is described in words for the encoder."""
    intent = parser.parse("", Slots(moods=("calm",), genres=("jazz",), activities=("focus",)))
    assert intent.text == ""
    assert intent.query_text == "calm jazz music for focus"


def test_structured_slots_override_parsed(parser: IntentParser) -> None:
    """A slot field sent by the client replaces the parsed one; unset fields keep parsing."""
    intent = parser.parse("sad jazz for studying", Slots(moods=("happy",)))
    assert intent.slots.moods == ("happy",)
    assert intent.slots.genres == ("jazz",)
    assert intent.slots.activities == ("focus",)


def test_structured_genres_are_canonicalised(parser: IntentParser) -> None:
    """Genre spellings from clients fold to the catalog's names, sorted and deduplicated."""
    intent = parser.parse("", Slots(genres=("Hip-Hop", "rap", "JAZZ")))
    assert intent.slots.genres == ("hip hop", "jazz")


@pytest.mark.parametrize(
    ("prompt", "slots", "message"),
    [
        ("", None, "empty request"),
        ("   \u200b ", None, "empty request"),
        ("jazz", Slots(exclude_genres=("jazz",)), "contradictory"),
        ("", Slots(moods=("calm",), exclude_moods=("calm",)), "contradictory"),
        ("", Slots(moods=("grumpy",)), "unknown mood"),
        ("", Slots(genres=("polka",)), "unknown genre"),
        ("", Slots(activities=("knitting",)), "unknown activity"),
        ("", Slots(exclude_attributes=("drums",)), "unknown attribute"),
        ("", Slots(tempo=(150.0, 90.0)), "tempo range"),
        ("", Slots(era=(1800, 1809)), "era"),
        ("x" * (MAX_PROMPT_CHARS + 1), None, "limit"),
        ("1" * 20_000 + "a", None, "limit"),  # refused before masking could shorten it
        ("jazz " + "a@b.co " * 100, None, "limit"),
    ],
)
def test_bad_intents_are_refused(
    parser: IntentParser, prompt: str, slots: Slots | None, message: str
) -> None:
    """Empty, contradictory, unknown or oversized requests raise IntentError saying why."""
    with pytest.raises(IntentError, match=message):
        parser.parse(prompt, slots)


def test_equivalent_requests_share_a_key(parser: IntentParser) -> None:
    """Spacing, case and slot order do not change the key; meaning and version do."""
    a = parser.parse("Jazz  for   STUDYING", Slots(genres=("rock", "jazz")))
    b = parser.parse("jazz for studying", Slots(genres=("jazz", "rock")))
    assert a.key("v1") == b.key("v1")
    assert a.key("v1") != a.key("v2")
    assert parser.parse("jazz").key("v1") != parser.parse("no jazz").key("v1")
    assert len(a.key("v1")) == 32  # 128-bit hex
    assert a.key("v1", 30) == b.key("v1", 30)
    assert a.key("v1", 30) != a.key("v1", 31)
    assert a.prompt_key() == b.prompt_key() != parser.parse("jazz").prompt_key()
