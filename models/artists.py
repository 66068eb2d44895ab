"""Find the catalog's artists in a prompt: "drake", "taylor swift songs", "like coldplay".

Exact matches come from a dictionary of folded names over the prompt's word n-grams (the
longest first); a prompt that is a name with a typo ("adelle") is matched fuzzily with
rapidfuzz against the most popular artists only, and only against the names whose length
allows a score above the cutoff, so a prompt that names no artist costs microseconds even for
a catalog with hundreds of thousands of artists.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import numpy as np
from rapidfuzz import fuzz, process

from models.songs import fold_text

# Words around an artist's name in a prompt that are not part of it.
_AROUND_TEXT = (
    "songs song music playlist mix radio like by best of essentials hits greatest station "
    "vibes only all top favorites favourites the this is just more similar to sounds jams "
    "tracks collection anthology"
)
_AROUND = frozenset(_AROUND_TEXT.split())
MAX_WORDS = 5  # longest artist name looked for, in words


def fold_name(name: str) -> str:
    """A name folded as song keys fold artists (`songs.fold_text`), a leading "the" dropped."""
    text = fold_text(name)
    return text[4:] if text.startswith("the ") else text


class ArtistMatcher:
    """Maps the artist names in a prompt to the catalog's spelling of them."""

    def __init__(
        self,
        names: Sequence[str],
        popularity: np.ndarray | None = None,
        *,
        blocked: Iterable[str] = (),
        fuzzy_limit: int = 20_000,
        fuzzy_cutoff: float = 88.0,
    ) -> None:
        pop = np.zeros(len(names)) if popularity is None else np.asarray(popularity, np.float64)
        order = np.argsort(-pop, kind="stable")
        self._names: dict[str, str] = {}
        for i in order.tolist():  # the most popular artist wins a shared folded name
            key = fold_name(names[i])
            if key:
                self._names.setdefault(key, names[i])
        # One-word names that are also ordinary prompt words ("chill", "summer") never match
        # alone; nor do one-word names of artists less popular than most.
        self._blocked = {fold_name(b) for b in blocked}
        floor = float(np.median(pop)) if len(pop) else 0.0
        self._single_ok = {
            fold_name(names[i]) for i in order[:fuzzy_limit].tolist() if pop[i] >= floor
        }
        fuzzy = [
            key
            for key in dict.fromkeys(fold_name(names[i]) for i in order[:fuzzy_limit].tolist())
            if len(key) >= 5 and key not in self._blocked
        ]
        # By length (the most popular first within one length), so that a lookup scores only
        # the names whose length allows the cutoff; `fuzz.ratio` is 100 × (1 − indel ÷ (a + b))
        # and the indel distance is at least |a − b|. rapidfuzz's own length check still
        # visits every name, ~1 ms for 20,000. (Of two names with one score, the shorter wins.)
        self._fuzzy = sorted(fuzzy, key=len)
        self._cutoff = fuzzy_cutoff

    def find(self, text: str, fuzzy: bool = True) -> tuple[str, ...]:
        """The catalog names of the artists the prompt names, in prompt order.

        `fuzzy=False` looks for exact names only. The parser asks so when other words of
        the prompt are slot words (a genre, mood, activity, tempo, era, theme or attribute,
        wanted or excluded): "country for working" names no artist called something like
        it, and scoring thousands of names of about its length would be most of the parse.
        """
        words = fold_name(text).split()
        found: list[str] = []
        i = 0
        while i < len(words):
            for size in range(min(MAX_WORDS, len(words) - i), 0, -1):
                key = " ".join(words[i : i + size])
                if self._accepts(key, size) and key in self._names:
                    found.append(self._names[key])
                    i += size
                    break
            else:
                i += 1
        if not found and fuzzy:
            core = " ".join(w for w in words if w not in _AROUND)
            if len(core) >= 5 and core not in self._blocked and self._fuzzy:
                best = process.extractOne(
                    core, self._fuzzy_near(len(core)), scorer=fuzz.ratio, score_cutoff=self._cutoff
                )
                if best is not None:
                    found.append(self._names[best[0]])
        return tuple(dict.fromkeys(found))

    def _fuzzy_near(self, length: int) -> list[str]:
        """The fuzzy names long enough and short enough to score the cutoff against a text
        of `length` characters (one character of slack either side for rounding)."""
        slack = 1 - self._cutoff / 100
        low = length * (1 - slack) / (1 + slack) - 1
        high = length * (1 + slack) / (1 - slack) + 1
        first = bisect.bisect_left(self._fuzzy, low, key=len)
        return self._fuzzy[first : bisect.bisect_right(self._fuzzy, high, key=len)]

    def _accepts(self, key: str, size: int) -> bool:
        if key in self._blocked or key in _AROUND:
            return False
        return size > 1 or key in self._single_ok
