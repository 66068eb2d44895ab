"""Semantic hits that can be checked: what a correct hit is, and thresholds with a bound.

A semantic hit serves prompt B from prompt A's cached answer. It is **correct** when B's own
fresh answer (same length, same version) shares at least half of A's tracks and A's tracks
meet every hard constraint of B (`correct`). That needs no hand labels, so any pair of
prompts can be judged, offline here and online by the edge's verifier.

Calibration (`calibrate`) judges many pairs of prompts whose slots are the same (the slot
veto already keeps the others apart) and, per bucket (the kinds of slot the prompts set),
picks the lowest cosine at which the incorrect share of the hits it would serve has a
one-sided Clopper–Pearson upper bound at or under `target` (1 % at 95 % confidence). A
bucket with too little evidence for a bound of its own takes the threshold of all pairs
pooled. The thresholds are stored in the artifact (`semantic.json`), beside the encoder
and catalog they were measured with.

Beyond the cosine, `conflicts` vetoes pairs the parser reads alike but whose remaining words
oppose ("rainy day" / "rainy night") or differ by a negation it could not attach.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
from scipy.stats import beta

from models import vocab
from models.catalog import Catalog
from models.errors import IntentError
from models.generator import PlaylistGenerator
from models.intent import Intent, IntentParser, Slots
from models.ranker import hard_mask

THRESHOLDS_FILE = "semantic.json"
_OPPOSITES: dict[str, set[str]] = {}
for _a, _b in vocab.ANTONYMS:
    _OPPOSITES.setdefault(_a, set()).add(_b)
    _OPPOSITES.setdefault(_b, set()).add(_a)


class Thresholds(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Per-bucket cosine thresholds and the evidence each was chosen on."""

    default: float
    """Threshold of every pair pooled: for buckets without one of their own."""
    buckets: dict[str, float] = {}
    target: float = 0.01
    """Highest incorrect-hit rate allowed, as an upper confidence bound."""
    confidence: float = 0.95
    pairs: dict[str, int] = {}
    """Judged pairs per bucket (same slots, different content words)."""
    format: int = 1

    def threshold(self, bucket: str) -> float:
        return self.buckets.get(bucket, self.default)


def bucket_of(slots: Slots) -> str:
    """The kinds of slot a prompt sets, e.g. "genre+mood"; "text" when it sets none."""
    kinds = [
        name
        for name, value in (
            ("genre", slots.genres),
            ("mood", slots.moods),
            ("activity", slots.activities),
            ("tempo", slots.tempo),
            ("era", slots.era),
            ("artist", slots.artists),
            ("theme", slots.themes),
            ("exclusion", slots.exclude_genres or slots.exclude_moods or slots.exclude_attributes),
            ("explicit", slots.explicit is not None),
        )
        if value
    ]
    return "+".join(kinds) or "text"


def conflicts(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two prompts' content words oppose: one holds a word whose opposite only the
    other holds, or one holds a negation cue the other lacks."""
    left, right = set(a), set(b)
    only_left, only_right = left - right, right - left
    if any(_OPPOSITES.get(word, set()) & only_right for word in only_left):
        return True
    return bool((only_left | only_right) & vocab.NEGATION_WORDS)


def upper_bound(errors: int, trials: int, confidence: float = 0.95) -> float:
    """One-sided Clopper–Pearson upper bound of a binomial rate (1.0 with no trials)."""
    if trials <= 0:
        return 1.0
    if errors >= trials:
        return 1.0
    return float(beta.ppf(confidence, errors + 1, trials - errors))


def correct(catalog: Catalog, served: np.ndarray, fresh: np.ndarray, slots: Slots) -> bool:
    """A hit serving `served` (A's rows) where `fresh` (B's own rows) would be made."""
    if not len(fresh):
        return not len(served)
    shared = len(np.intersect1d(served, fresh))
    return 2 * shared >= len(fresh) and bool(hard_mask(catalog, slots, served).all())


GRID = tuple(round(0.5 + 0.01 * i, 2) for i in range(50))  # 0.50 … 0.99
NEVER = 1.01  # a threshold no cosine reaches


def choose(
    sims: np.ndarray, right: np.ndarray, target: float, confidence: float
) -> tuple[float, float, int]:
    """Lowest grid threshold whose served pairs keep the bound at or under `target`; with
    that bound and how many pairs it serves. NEVER when none does."""
    for threshold in GRID:
        served = sims >= threshold
        count = int(served.sum())
        bound = upper_bound(int((served & ~right).sum()), count, confidence)
        if count and bound <= target:
            return threshold, bound, count
    return NEVER, 1.0, 0


@dataclass(frozen=True)
class Pair:
    kind: str  # "paraphrase", "near" (same slots, other words) or "contrast"
    a: str
    b: str


_TEMPLATES = ("{x}", "{x} music", "{x} songs", "{x} playlist", "best {x} hits", "{x} vibes")
_MODIFIERS = (
    ("midnight", "late night"),
    ("sunset", "dusk"),
    ("vintage", "retro"),
    ("epic", "cinematic"),
    ("weekend", "saturday"),
    ("city", "urban"),
    ("underground", "indie"),
    ("classic", "timeless"),
    ("sunday", "lazy sunday"),
    ("beach", "ocean"),
    ("night", "day"),
    ("morning", "evening"),
    ("old", "new"),
    ("rainy", "sunny"),
)
_FLIPS: tuple[tuple[str, str], ...] = (
    ("{x}", "no {x}"),
    ("fast {x}", "slow {x}"),
    ("80s {x}", "90s {x}"),
    ("clean {x}", "explicit {x}"),
    ("happy {x}", "sad {x}"),
    ("{x} for the gym", "{x} for sleeping"),
    ("calm {x}", "energetic {x}"),
)


def template_pairs(genres: Iterable[str], seed: int = 0, per_kind: int = 400) -> list[Pair]:
    """Paraphrase, near and contrast pairs from templates over genres, moods and
    activities (seeded; no corpus needed)."""
    rng = random.Random(seed)
    moods = [m.name for m in vocab.MOODS]
    activities = [a.name for a in vocab.ACTIVITIES]
    genre_list = sorted(set(genres))[:40] or list(vocab.GENRES)
    seeds = genre_list + moods + [f"{g} for {a}" for g in genre_list[:12] for a in activities]
    seeds += [f"{m} {g}" for m in moods for g in genre_list[:12]]
    pairs: list[Pair] = []
    for x in rng.sample(seeds, min(len(seeds), per_kind // 4)):
        a, b = rng.sample(_TEMPLATES, 2)
        pairs.append(Pair("paraphrase", a.format(x=x), b.format(x=x)))
        for left, right in rng.sample(_MODIFIERS, 3):
            pairs.append(Pair("near", f"{left} {x}", f"{right} {x}"))
            pairs.append(Pair("near", f"{x}", f"{left} {x}"))
    for x in rng.sample(genre_list, min(len(genre_list), per_kind // len(_FLIPS))):
        for a, b in _FLIPS:
            pairs.append(Pair("contrast", a.format(x=x), b.format(x=x)))
    return pairs


def title_pairs(titles: Iterable[str], parser: IntentParser, seed: int = 0) -> list[Pair]:
    """Pairs of real playlist titles the parser reads into the same slots: alike after
    normalizing ("Workout Mix" / "gym playlist"), or the same slots with other words."""
    rng = random.Random(seed)
    by_slots: dict[bytes, list[str]] = {}
    for title in sorted(set(titles)):
        try:
            intent = parser.parse(title)
        except IntentError:
            continue
        by_slots.setdefault(msgspec.json.encode(intent.slots), []).append(title)
    pairs = []
    for group in by_slots.values():
        combos = list(itertools.combinations(group, 2))
        for a, b in rng.sample(combos, min(len(combos), 12)):
            pairs.append(Pair("near", a, b))
    return pairs


@dataclass(frozen=True)
class Judged:
    """One pair, as the edge would see it and as the oracle judges it."""

    pair: Pair
    bucket: str
    similarity: float
    same_key: bool  # one canonical key: an exact hit, no semantic lookup
    same_slots: bool
    conflict: bool
    correct: bool


def judge(
    pairs: Sequence[Pair],
    parser: IntentParser,
    encode: Callable[[str], np.ndarray],
    answer: Callable[[Intent], np.ndarray],
    catalog: Catalog,
    progress: Callable[[int], None] = lambda done: None,
) -> list[Judged]:
    """Parse, encode and answer every prompt once, then judge each pair."""
    intents: dict[str, Intent] = {}
    for pair in pairs:
        for text in (pair.a, pair.b):
            if text not in intents:
                intents[text] = parser.parse(text)
    vectors = {t: encode(i.query_text) for t, i in intents.items()}
    answers: dict[str, np.ndarray] = {}
    for done, (text, intent) in enumerate(intents.items(), 1):
        answers[text] = answer(intent)
        progress(done)
    judged = []
    for pair in pairs:
        a, b = intents[pair.a], intents[pair.b]
        judged.append(
            Judged(
                pair,
                bucket_of(b.slots),
                float(vectors[pair.a] @ vectors[pair.b]),
                a.key("v") == b.key("v"),
                a.slots == b.slots,
                conflicts(a.words or (), b.words or ()),
                correct(catalog, answers[pair.a], answers[pair.b], b.slots),
            )
        )
    return judged


def judge_on(
    generator: PlaylistGenerator,
    parser: IntentParser,
    pairs: Sequence[Pair],
    n: int = 30,
    progress: Callable[[int], None] = lambda done: None,
) -> list[Judged]:
    """Every pair judged on one version's own encoder and miss path (fresh answers of `n`)."""
    return judge(
        pairs,
        parser,
        lambda text: generator.encoder.encode([text])[0],
        lambda intent: np.array(generator.generate(intent, n)[0].rows),
        generator.catalog,
        progress,
    )


MIN_BUCKET_PAIRS = 100
"""Fewest judged pairs for a bucket to get a threshold of its own."""


def calibrate(
    judged: Sequence[Judged], target: float = 0.01, confidence: float = 0.95
) -> Thresholds:
    """Per-bucket thresholds over the pairs a cosine decides: same slots, other keys, no
    conflict of words."""
    decided = [j for j in judged if j.same_slots and not j.same_key and not j.conflict]
    sims = np.array([j.similarity for j in decided], dtype=np.float64)
    right = np.array([j.correct for j in decided], dtype=bool)
    default, _, _ = choose(sims, right, target, confidence)
    buckets, counts = {}, {}
    for name in sorted({j.bucket for j in decided}):
        inside = np.array([j.bucket == name for j in decided], dtype=bool)
        counts[name] = int(inside.sum())
        if counts[name] >= MIN_BUCKET_PAIRS:
            buckets[name] = choose(sims[inside], right[inside], target, confidence)[0]
    return Thresholds(default, buckets, target, confidence, counts)


def served(j: Judged, thresholds: Thresholds) -> bool:
    """Whether the edge would serve B from A's answer: one key, or same slots, no word
    conflict and a cosine at the bucket's threshold."""
    if j.same_key:
        return True
    return j.same_slots and not j.conflict and j.similarity >= thresholds.threshold(j.bucket)
