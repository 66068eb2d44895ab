"""`song_key`: one key per song, whatever remaster, remix, feature credit or live take it is.

Catalogs carry the same song many times ("Hey Jude", "Hey Jude - Remastered 2015", "Hey
Jude - Live"); a playlist that holds two of them repeats itself to a listener.
"""

from __future__ import annotations

import re
import unicodedata

# A version word inside a dash tail (" - 2011 Remaster", " - Loud Luxury Remix") or brackets
# ("(Remastered)", "[Radio Edit]"); a plain dash tail such as " - Part 2" is kept.
_VERSION = (
    r"remaster(?:ed)?|remix(?:es)?|mix|edit|live|version|mono|stereo|acoustic|demo|"
    r"instrumental|mixed|rework|re-?recorded|bonus track|deluxe|single|from|feat|ft|featuring"
)
_DASH_TAIL = re.compile(rf"(?:\s+[-–—]\s*|[-–—]\s+)[^-–—]*\b(?:{_VERSION})\b.*$")
_BRACKETS = re.compile(rf"\s*[(\[][^)\]]*\b(?:{_VERSION}|with)\b[^)\]]*[)\]]")
_FEATURING = re.compile(r"\s+(?:feat|ft|featuring)\.?\s.*$")
_APOSTROPHES = re.compile(r"['’`´]")
_PUNCTUATION = re.compile(r"[\W_]+")


def fold_text(text: str) -> str:
    """Casefold, drop accents and apostrophes, `&` → and, other punctuation to spaces."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).replace("&", " and ")
    return " ".join(_PUNCTUATION.sub(" ", _APOSTROPHES.sub("", text)).split())


def song_title(title: str) -> str:
    """The title without version tails and feature credits, folded."""
    text = title.casefold()
    while True:
        shorter = _FEATURING.sub("", _DASH_TAIL.sub("", _BRACKETS.sub("", text)))
        if shorter == text or not shorter.strip():
            break
        text = shorter
    return fold_text(text) or fold_text(title)


def song_key(title: str, artist: str) -> str:
    """Equal for two recordings of one song by one artist (folded artist + bare title)."""
    return f"{fold_text(artist)}\x1f{song_title(title)}"
