"""GET /v1/playlists query strings → `PlaylistRequest`, canonically.

Parameters may come in any order, repeated or comma-separated (`mood=calm&mood=happy` is
`mood=calm,happy`), in any case; the intent's canonical form then sorts and deduplicates, so
equivalent URLs share one cache key. Unknown parameters are refused rather than ignored: a
typo (`genres=`) would otherwise silently widen the answer and split the CDN cache.

This parser is the whole validation of a GET, by either way in (the fast GET middleware or
Litestar's handler, which declares no typed parameters of its own): `tempo`, `explicit` and
`n` take exactly one value, `explicit` is true/false/1/0 and `n` a plain decimal number.
`OPENAPI` documents the same parameters for the schema.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from urllib.parse import parse_qsl, quote

from litestar.openapi.spec import Example, OpenAPIType, Parameter, Schema

from edge.errors import BadRequest
from edge.schemas import PlaylistRequest
from models import vocab
from models.intent import Slots

PARAMS = ("q", "mood", "activity", "genre", "exclude", "tempo", "explicit", "n")
_SCALARS = {"q", "tempo", "explicit", "n"}
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
MAX_QUERY_BYTES = 4096
MAX_VALUES = 16
MAX_Q_CHARS = 2000
"""Longest `q`, as the OpenAPI schema declares it (the intent parser then allows 500
characters once whitespace is collapsed)."""


def _documented(
    name: str, kind: Schema, description: str, example: str | None = None, **limits: int
) -> Parameter:
    """One query parameter as the OpenAPI document shows it (optional, or null)."""
    schema = Schema(
        one_of=[kind, Schema(type=OpenAPIType.NULL)],
        description=description,
        examples=[example] if example else None,
        **limits,  # type: ignore[arg-type]
    )
    return Parameter(
        name=name,
        param_in="query",
        schema=schema,
        description=description,
        required=False,
        examples={f"{name}-example-1": Example(value=example)} if example else None,
    )


_LIST = Schema(type=OpenAPIType.ARRAY, items=Schema(type=OpenAPIType.STRING))
_REPEATED = "Repeated or comma-separated"
OPENAPI = [
    _documented(
        "q", Schema(type=OpenAPIType.STRING), "Free-text prompt", "rainy sunday jazz",
        max_length=MAX_Q_CHARS,
    ),
    _documented("mood", _LIST, _REPEATED),
    _documented("activity", _LIST, _REPEATED),
    _documented("genre", _LIST, _REPEATED),
    _documented("exclude", _LIST, "Genres, moods, 'vocals' or 'explicit' to leave out"),
    _documented(
        "tempo",
        Schema(type=OpenAPIType.STRING),
        "slow, medium, fast, a bpm, or a bpm range like 100-120",
    ),
    _documented("explicit", Schema(type=OpenAPIType.BOOLEAN), "false: clean tracks only"),
    _documented("n", Schema(type=OpenAPIType.INTEGER), "Playlist length", minimum=1),
]  # fmt: skip
"""`PARAMS` as the OpenAPI document describes them."""


def check_text(text: str, what: str) -> str:
    """Refuse control characters (tab, newline and carriage return are whitespace)."""
    for char in text:
        if (char < " " and char not in "\t\n\r") or "\x7f" <= char <= "\x9f":
            raise BadRequest(f"{what} contains control character U+{ord(char):04X}")
    return text


def _values(pairs: list[tuple[str, str]], name: str) -> list[str]:
    found = [v for k, v in pairs if k == name]
    if name in _SCALARS and len(found) > 1:
        raise BadRequest(f"parameter {name!r} is given {len(found)} times; give it once")
    if name == "q" and found and len(found[0]) > MAX_Q_CHARS:
        raise BadRequest(f"q is {len(found[0])} characters; the limit is {MAX_Q_CHARS}")
    if name in _SCALARS and name != "q":  # one value, as given
        return [check_text(v.strip(), name) for v in found]
    items = [check_text(p.strip(), name) for v in found for p in v.split(",")]
    items = [i for i in items if i]
    if len(items) > MAX_VALUES:
        raise BadRequest(f"parameter {name!r} has {len(items)} values; at most {MAX_VALUES}")
    return items


def parse_tempo(text: str) -> tuple[float, float]:
    """A tempo word ("slow"), a bpm ("120") or a bpm range ("100-120")."""
    word = text.casefold()
    if word in vocab.TEMPO_WORDS:
        return vocab.TEMPO_WORDS[word]
    low, _, high = word.removesuffix("bpm").strip().partition("-")
    try:
        lo = float(low)
        hi = float(high) if high else None
    except ValueError:
        raise BadRequest(
            f"tempo {text!r} is not a bpm, a range like 100-120, or one of "
            f"{', '.join(sorted(vocab.TEMPO_WORDS))}"
        ) from None
    if hi is None:
        lo, hi = lo - vocab.BPM_TOLERANCE, lo + vocab.BPM_TOLERANCE
        lo, hi = max(vocab.MIN_BPM, lo), min(vocab.MAX_BPM, hi)
    if not (vocab.MIN_BPM <= lo <= hi <= vocab.MAX_BPM):
        raise BadRequest(f"tempo {text!r} must lie within {vocab.MIN_BPM:g}-{vocab.MAX_BPM:g} bpm")
    return (lo, hi)


def parse_flag(text: str, name: str) -> bool:
    word = text.casefold()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise BadRequest(f"parameter {name!r} must be true or false, got {text!r}")


def parse_length(text: str, max_length: int) -> int:
    # ASCII digits without a leading zero: str.isdigit also takes "²" and "٣".
    plain = text.isascii() and text.isdigit() and not text.startswith("0")
    if not plain or not 1 <= int(text) <= max_length:
        raise BadRequest(f"n must be a whole number from 1 to {max_length}, got {text!r}")
    return int(text)


def parse_query(
    raw: bytes, *, genres: Collection[str], default_length: int, max_length: int
) -> PlaylistRequest:
    """Parse and validate a raw query string; every problem raises `BadRequest`."""
    if len(raw) > MAX_QUERY_BYTES:
        raise BadRequest(f"query string is {len(raw)} bytes; the limit is {MAX_QUERY_BYTES}")
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=64
        )
    except UnicodeDecodeError:
        raise BadRequest("query string is not valid UTF-8 (raw or percent-encoded)") from None
    except ValueError as exc:  # too many fields
        raise BadRequest(f"query string: {exc}") from None
    if unknown := sorted({k for k, _ in pairs} - set(PARAMS)):
        raise BadRequest(f"unknown parameter(s) {unknown}; known: {', '.join(PARAMS)}")
    prompt = " ".join(_values(pairs, "q"))
    excluded: dict[str, list[str]] = {"genre": [], "mood": [], "attribute": []}
    explicit_values = _values(pairs, "explicit")
    explicit = parse_flag(explicit_values[0], "explicit") if explicit_values else None
    for value in _values(pairs, "exclude"):
        word = value.casefold()
        genre = vocab.canonical_genre(word)
        if word == "explicit":
            if explicit is True:
                raise BadRequest("contradictory parameters: explicit=true and exclude=explicit")
            explicit = False
        elif word in vocab.MOOD_BY_NAME:
            excluded["mood"].append(word)
        elif genre in genres:
            excluded["genre"].append(genre)
        elif word in ("vocals", "vocal"):
            excluded["attribute"].append("vocals")
        else:
            raise BadRequest(
                f"cannot exclude {value!r}: not a known genre, mood, 'vocals' or 'explicit'"
            )
    tempo = _values(pairs, "tempo")
    length = _values(pairs, "n")
    slots = Slots(
        moods=tuple(_values(pairs, "mood")),
        activities=tuple(_values(pairs, "activity")),
        genres=tuple(_values(pairs, "genre")),
        exclude_genres=tuple(excluded["genre"]),
        exclude_moods=tuple(excluded["mood"]),
        exclude_attributes=tuple(excluded["attribute"]),
        tempo=parse_tempo(tempo[0]) if tempo else None,
        explicit=explicit,
    )
    return PlaylistRequest(
        prompt=check_text(prompt, "q"),
        slots=None if slots.is_empty() else slots,
        n=parse_length(length[0], max_length) if length else default_length,
    )


def canonical_query(raw: bytes, *, default_length: int) -> bytes:
    """The canonical form of a valid GET query string: parameters in name order (as
    Varnish's `std.querysort` puts them), lists casefolded, deduplicated, sorted and
    comma-joined, `q` NFKC-normalised, casefolded and its whitespace collapsed, `n` left out
    when it is the default, everything percent-encoded (`%20` for a space). Every query
    string of one request has the same canonical form, and it names the same cache key."""
    pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    parts: list[str] = []
    for name in sorted(PARAMS):
        values = _values(pairs, name)
        if name == "q":
            text = " ".join(unicodedata.normalize("NFKC", " ".join(values)).casefold().split())
            values = [text] if text else []
        elif name == "n":
            values = [v for v in values if v != str(default_length)]
        elif name == "explicit":
            values = ["true" if parse_flag(v, name) else "false" for v in values]
        else:
            values = sorted({v.casefold() for v in values})
        if values:
            parts.append(f"{name}={','.join(quote(v, safe='') for v in values)}")
    return "&".join(parts).encode()
