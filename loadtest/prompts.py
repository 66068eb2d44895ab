"""Seeded playlist prompts built from templates over the slot vocabulary."""

from __future__ import annotations

import numpy as np

from models import vocab

_TEMPLATES = (
    "{mood} {genre}",
    "{genre} for {activity}",
    "{mood} {genre} for {activity}",
    "{tempo} {genre}, no {exclude}",
    "{era} {genre}",
    "{mood} songs for {activity} without vocals",
    "{activity} music, anything but {exclude}",
    "{mood} {era} {genre} for a {time}",
    "{genre}",
    "something {mood} for {activity} on a {time}",
)
_TIMES = ("rainy sunday", "late night", "summer afternoon", "winter morning", "long drive")
_ERAS = ("60s", "70s", "80s", "90s", "2000s", "2010s")
_TEMPOS = ("slow", "fast", "mid tempo", "120 bpm")


def sample_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` prompts drawn with a seeded generator; the same (n, seed) gives the same list."""
    rng = np.random.default_rng(seed)

    def pick(options: tuple[str, ...]) -> str:
        return str(options[rng.integers(len(options))])

    prompts = []
    for _ in range(n):
        template = pick(_TEMPLATES)
        prompts.append(
            template.format(
                mood=pick(vocab.MOOD_BY_NAME[pick(tuple(vocab.MOOD_BY_NAME))].words),
                genre=pick(vocab.GENRES),
                activity=pick(vocab.ACTIVITY_BY_NAME[pick(tuple(vocab.ACTIVITY_BY_NAME))].words),
                exclude=pick(vocab.GENRES),
                era=pick(_ERAS),
                tempo=pick(_TEMPOS),
                time=pick(_TIMES),
            )
        )
    return prompts


def unique_prompts(n: int, seed: int = 0) -> list[str]:
    """`n` distinct prompts (as many as the templates allow), in a seeded order."""
    seen: dict[str, None] = {}
    for attempt in range(50):
        for prompt in sample_prompts(n, seed=seed * 1000 + attempt):
            seen.setdefault(prompt)
            if len(seen) == n:
                return list(seen)
    return list(seen)


# One request, several wordings: each template renders the same mood, genre and activity.
_PHRASINGS = (
    "{mood} {genre} for {activity}",
    "{genre} for {activity}, {mood}",
    "{mood} {genre} music for {activity}",
    "{activity} with some {mood} {genre}",
)


def zipf_workload(
    requests: int,
    prompts: int,
    *,
    exponent: float = 1.0,
    paraphrase_share: float = 0.3,
    seed: int = 0,
) -> list[str]:
    """`requests` prompts over `prompts` distinct intents with Zipf popularity.

    Intent i (0 = most popular) is requested with weight 1 / (i + 1) ** exponent. A share of
    the requests use another wording of the intent (a paraphrase), the rest its first one.
    """
    rng = np.random.default_rng(seed)
    moods, activities = list(vocab.MOOD_BY_NAME), list(vocab.ACTIVITY_BY_NAME)
    combos = [(m, g, a) for m in moods for g in vocab.GENRES for a in activities]
    chosen = rng.permutation(len(combos))[:prompts]
    weights = 1.0 / np.arange(1, len(chosen) + 1) ** exponent
    picks = rng.choice(len(chosen), size=requests, p=weights / weights.sum())
    reworded = rng.random(requests) < paraphrase_share
    phrasing = rng.integers(1, len(_PHRASINGS), size=requests)
    out = []
    for pick, other, which in zip(picks, reworded, phrasing, strict=True):
        mood, genre, activity = combos[chosen[pick]]
        template = _PHRASINGS[which if other else 0]
        out.append(template.format(mood=mood, genre=genre, activity=activity))
    return out
