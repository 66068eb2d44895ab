"""The shared vocabulary of slots: moods, activities, genres, tempo and era words.

Intent parsing reads prompts with it, descriptors describe tracks with it, and the ranker
checks tracks against it, so a prompt and a track that "mean" the same slot agree exactly.
A mood or activity is a predicate over audio features, so any catalog can be labelled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

# Feature columns a predicate may read; each is a float32 array over the catalog.
Features = Mapping[str, np.ndarray]
Predicate = Callable[[Features], np.ndarray]


@dataclass(frozen=True)
class SlotValue:
    """One value of a slot: its canonical name, the words that name it, and what it means."""

    name: str
    words: tuple[str, ...]
    predicate: Predicate
    describe: str  # phrase used in track descriptors


def _f(cols: Features, name: str) -> np.ndarray:
    return np.asarray(cols[name], dtype=np.float32)


MOODS: tuple[SlotValue, ...] = (
    SlotValue(
        "happy",
        ("happy", "cheerful", "joyful", "upbeat", "feel good", "feel-good", "sunny", "bright"),
        lambda c: _f(c, "valence") >= 0.65,
        "happy, cheerful, feel-good",
    ),
    SlotValue(
        "sad",
        (
            "sad",
            "melancholic",
            "melancholy",
            "heartbreak",
            "heartbroken",
            "heartache",
            "breakup",
            "break up",
            "break-up",
            "blue",
            "gloomy",
        ),
        lambda c: _f(c, "valence") <= 0.35,
        "sad, melancholic, heartbreak",
    ),
    SlotValue(
        "calm",
        (
            "calm",
            "chill",
            "chillin",
            "chillin'",
            "chilling",
            "chilled",
            "mellow",
            "relaxing",
            "relaxed",
            "relax",
            "gentle",
            "peaceful",
            "soft",
            "laid back",
            "laid-back",
            "cozy",
            "rainy",
            "low energy",
            "low-energy",
            "quiet",
            "quietly",
        ),
        lambda c: _f(c, "energy") <= 0.4,
        "calm, mellow, relaxing",
    ),
    SlotValue(
        "energetic",
        (
            "energetic",
            "high energy",
            "high-energy",
            "hype",
            "pumped",
            "intense",
            "powerful",
            "loud",
        ),
        lambda c: _f(c, "energy") >= 0.7,
        "energetic, intense, powerful",
    ),
    SlotValue(
        "dark",
        ("dark", "moody", "brooding", "ominous", "gritty"),
        lambda c: (_f(c, "valence") <= 0.4) & (_f(c, "energy") >= 0.45),
        "dark, moody, brooding",
    ),
    SlotValue(
        "romantic",
        ("romantic", "love", "sensual", "date night", "tender"),
        lambda c: (
            (_f(c, "valence") >= 0.4) & (_f(c, "energy") <= 0.6) & (_f(c, "acousticness") >= 0.3)
        ),
        "romantic, tender, warm",
    ),
    SlotValue(
        "dreamy",
        ("dreamy", "ethereal", "atmospheric", "floaty", "hazy"),
        lambda c: (_f(c, "energy") <= 0.5) & (_f(c, "instrumentalness") >= 0.3),
        "dreamy, atmospheric, ethereal",
    ),
)

ACTIVITIES: tuple[SlotValue, ...] = (
    SlotValue(
        "workout",
        ("workout", "work out", "gym", "training", "lifting", "exercise", "cardio", "hiit"),
        lambda c: (_f(c, "energy") >= 0.7) & (_f(c, "tempo") >= 115),
        "good for a workout at the gym",
    ),
    SlotValue(
        "running",
        ("running", "run", "jogging", "jog", "marathon"),
        lambda c: (_f(c, "energy") >= 0.6) & (_f(c, "tempo") >= 140),
        "good for running",
    ),
    SlotValue(
        "focus",
        (
            "focus",
            "study",
            "studying",
            "concentration",
            "concentrate",
            "deep work",
            "work",
            "working",
            "coding",
            "reading",
        ),
        lambda c: (
            (_f(c, "energy") <= 0.6)
            & (_f(c, "speechiness") <= 0.1)
            & (_f(c, "instrumentalness") >= 0.4)
        ),
        "good for focus and studying",
    ),
    SlotValue(
        "sleep",
        ("sleep", "sleeping", "bedtime", "lullaby", "insomnia", "nap", "asleep", "sleepy"),
        lambda c: (_f(c, "energy") <= 0.3) & (_f(c, "loudness") <= -12),
        "good for sleep, quiet",
    ),
    SlotValue(
        "party",
        ("party", "dance", "dancing", "club", "clubbing", "pregame", "celebration", "fiesta"),
        lambda c: (_f(c, "danceability") >= 0.7) & (_f(c, "energy") >= 0.6),
        "good for a party, danceable",
    ),
    SlotValue(
        "driving",
        ("driving", "drive", "road trip", "roadtrip", "commute", "cruising"),
        lambda c: (_f(c, "energy") >= 0.5) & (_f(c, "energy") <= 0.85),
        "good for driving and road trips",
    ),
    SlotValue(
        "dinner",
        ("dinner", "cooking", "brunch", "coffee", "cafe", "café", "morning", "mornings"),
        lambda c: (_f(c, "energy") <= 0.55) & (_f(c, "acousticness") >= 0.4),
        "good for dinner, coffee and cooking",
    ),
    SlotValue(
        "meditation",
        ("meditation", "meditate", "yoga", "mindfulness", "spa"),
        lambda c: (_f(c, "energy") <= 0.3) & (_f(c, "instrumentalness") >= 0.5),
        "good for meditation and yoga",
    ),
)

# Genres every catalog understands; a catalog may add its own (they are parsed by name).
GENRES: tuple[str, ...] = (
    "acoustic",
    "ambient",
    "blues",
    "classical",
    "country",
    "disco",
    "drum and bass",
    "edm",
    "electronic",
    "folk",
    "funk",
    "gospel",
    "hip hop",
    "house",
    "indie",
    "jazz",
    "k-pop",
    "latin",
    "lo-fi",
    "metal",
    "piano",
    "pop",
    "punk",
    "r&b",
    "reggae",
    "rock",
    "soul",
    "soundtrack",
    "synthwave",
    "techno",
)

# Alternative spellings → canonical genre name.
GENRE_ALIASES: Mapping[str, str] = {
    "hiphop": "hip hop",
    "hip-hop": "hip hop",
    "rap": "hip hop",
    "lofi": "lo-fi",
    "funky": "funk",
    "lo fi": "lo-fi",
    "rnb": "r&b",
    "r and b": "r&b",
    "rhythm and blues": "r&b",
    "dnb": "drum and bass",
    "drum n bass": "drum and bass",
    "kpop": "k-pop",
    "k pop": "k-pop",
    "electronica": "electronic",
    "dance music": "edm",
    "heavy metal": "metal",
    "classic rock": "rock",
    "alt rock": "rock",
    "alternative": "indie",
    "film score": "soundtrack",
    "score": "soundtrack",
    "synth wave": "synthwave",
    "retrowave": "synthwave",
}

# Attributes a listener may exclude ("no vocals", "without explicit lyrics").
ATTRIBUTE_WORDS: Mapping[str, str] = {
    "vocals": "vocals",
    "vocal": "vocals",
    "singing": "vocals",
    "lyrics": "vocals",
    "words": "vocals",
    "explicit": "explicit",
    "swearing": "explicit",
    "profanity": "explicit",
    "cursing": "explicit",
}

# Tempo words → (min_bpm, max_bpm); open ends use 0 and 300.
TEMPO_WORDS: Mapping[str, tuple[float, float]] = {
    "slow": (0.0, 95.0),
    "slower": (0.0, 95.0),
    "downtempo": (0.0, 100.0),
    "mid tempo": (95.0, 125.0),
    "midtempo": (95.0, 125.0),
    "medium tempo": (95.0, 125.0),
    "fast": (125.0, 300.0),
    "faster": (125.0, 300.0),
    "uptempo": (120.0, 300.0),
    "up-tempo": (120.0, 300.0),
}
BPM_TOLERANCE = 10.0
MIN_BPM, MAX_BPM = 0.0, 300.0  # the range a tempo slot may span

MOOD_BY_NAME: Mapping[str, SlotValue] = {m.name: m for m in MOODS}
ACTIVITY_BY_NAME: Mapping[str, SlotValue] = {a.name: a for a in ACTIVITIES}


def canonical_genre(text: str) -> str:
    """Fold a genre label from any catalog or prompt into its canonical spelling."""
    name = " ".join(text.casefold().replace("_", " ").split())
    return GENRE_ALIASES.get(name, name)


def tempo_word(bpm: float) -> str:
    """The word a descriptor uses for a tempo."""
    if bpm < 95:
        return "slow"
    if bpm < 125:
        return "mid tempo"
    return "fast"


# Seasons and holidays: no audio feature shows them, so tracks are found by the words of
# their title, album and tags (regex alternatives, matched whole-word, case-insensitively).
THEMES: Mapping[str, tuple[str, ...]] = {
    "christmas": ("christmas", "xmas", "x-mas", "santa", "jingle", "sleigh", "navidad", "noel"),
    "halloween": ("halloween", "spooky", "monster", "zombie", "ghost", "haunted", "witch"),
    "summer": ("summer", "sun", "sunshine", "beach", "tropical", "verano"),
    "winter": ("winter", "snow", "cold", "frozen", "ice"),
    "spring": ("spring", "bloom", "flowers"),
    "autumn": ("autumn", "fall", "october", "leaves"),
    "valentine": ("valentine", "love"),
}
# Prompt words → theme; several words may name one.
THEME_WORDS: Mapping[str, str] = {
    "christmas": "christmas",
    "xmas": "christmas",
    "x-mas": "christmas",
    "holiday": "christmas",
    "holidays": "christmas",
    "navidad": "christmas",
    "halloween": "halloween",
    "spooky": "halloween",
    "summer": "summer",
    "summertime": "summer",
    "verano": "summer",
    "winter": "winter",
    "spring": "spring",
    "autumn": "autumn",
    "valentine": "valentine",
    "valentines": "valentine",
    "valentine's": "valentine",
}

# Spelled-out decades.
DECADE_WORDS: Mapping[str, int] = {
    "twenties": 1920,
    "thirties": 1930,
    "forties": 1940,
    "fifties": 1950,
    "sixties": 1960,
    "seventies": 1970,
    "eighties": 1980,
    "nineties": 1990,
    "noughties": 2000,
    "two thousands": 2000,
    "twenty tens": 2010,
}
# Era words whose range is fixed, (from, to).
FIXED_ERAS: Mapping[str, tuple[int, int]] = {
    "oldies": (1950, 1979),
    "oldie": (1950, 1979),
    "golden oldies": (1950, 1979),
    "old school": (1985, 2005),
    "oldschool": (1985, 2005),
}
# Era words relative to the catalog's newest release year: (years back from, years back to).
RELATIVE_ERAS: Mapping[str, tuple[int, int]] = {
    "throwback": (20, 8),
    "throwbacks": (20, 8),
    "tbt": (20, 8),
    "nostalgia": (20, 8),
    "nostalgic": (20, 8),
    "middle school": (20, 8),
    "childhood": (20, 8),
    "new music": (1, 0),
    "new songs": (1, 0),
    "new hits": (1, 0),
    "latest": (1, 0),
    "fresh": (1, 0),
}


# Words a prompt's canonical form leaves out: they name no slot and change no answer
# ("sad songs" and "sad" ask for the same playlist; see `models.intent.content_words`).
FILLER_WORDS: frozenset[str] = frozenset(
    {
        "song", "songs", "music", "hit", "hits", "anthem", "anthems", "playlist", "playlists",
        "mix", "mixes", "vibe", "vibes", "tune", "tunes", "track", "tracks", "jam", "jams",
        "best", "top", "greatest", "favorite", "favorites", "favourite", "favourites", "list",
        "a", "an", "the", "for", "to", "of", "and", "with", "in", "on", "at", "my", "me",
        "our", "some", "that", "this", "these", "is", "are", "be", "you", "your", "i", "it",
        "while", "from", "by", "get", "getting", "make", "makes", "making", "over", "just",
        "really", "very", "so", "like", "into", "about", "all", "time", "good", "great",
        "ever", "pls", "please", "when", "feel",
    }
)  # fmt: skip
# Content words that mean the same, folded to one before keys are made.
WORD_SYNONYMS: Mapping[str, str] = {
    "bbq": "barbecue",
    "aggressive": "angry",
    "barbeque": "barbecue",
    "heartbreak": "breakup",
    "lo-fi": "lofi",
    "gym": "workout",
    "nighttime": "night",
    "tonight": "night",
    "daytime": "day",
    "roadtrip": "road trip",
}
# Content-word opposites: two prompts that differ by one of these never share an answer,
# whatever their cosine ("rainy day" / "rainy night", "old school" / "new school").
ANTONYMS: tuple[tuple[str, str], ...] = (
    ("day", "night"),
    ("morning", "night"),
    ("morning", "evening"),
    ("sunrise", "sunset"),
    ("early", "late"),
    ("old", "new"),
    ("loud", "quiet"),
    ("soft", "hard"),
    ("light", "heavy"),
    ("hot", "cold"),
    ("sunny", "rainy"),
    ("male", "female"),
    ("acoustic", "electric"),
    ("live", "studio"),
    ("up", "down"),
    ("start", "end"),
    ("wake", "sleep"),
    ("love", "hate"),
    ("boy", "girl"),
    ("slow", "fast"),
    ("happy", "sad"),
    ("calm", "angry"),
)
NEGATION_WORDS: frozenset[str] = frozenset(
    {"no", "not", "without", "minus", "except", "excluding", "never", "non", "none", "zero"}
)
"""Negation cues left in a prompt's words (the parser found no slot term after them)."""
