"""The request corpus load scenarios read: seeded, Zipf-weighted, with paraphrases and slots.

One JSON object per line, most popular first:
  {"rank": 1, "weight": 0.12, "kind": "text", "prompt": "...", "variants": ["...", ...]}
  {"rank": 7, "weight": 0.01, "kind": "slots", "params": {"mood": "calm", "genre": "jazz", ...}}
`weight` is the request's Zipf share (rank ** -exponent, normalised); `variants` are other
wordings of the same free-text intent (paraphrases the semantic cache should catch).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

from edge.errors import BadRequest
from edge.query import parse_query
from loadtest.prompts import sample_prompts
from models import vocab
from models.errors import IntentError
from models.intent import IntentParser

_PHRASINGS = (
    "{mood} {genre} for {activity}",
    "{genre} for {activity}, {mood}",
    "{mood} {genre} music for {activity}",
    "{activity} with some {mood} {genre}",
)
_TEMPOS = ("slow", "fast", "medium")


def build(
    prompts: int, *, exponent: float = 1.0, slot_share: float = 0.2, seed: int = 0
) -> list[dict[str, Any]]:
    """`prompts` distinct requests: free text (templated, with paraphrase variants for the
    mood/genre/activity ones) and structured-slot GETs, in a seeded Zipf order."""
    rng = np.random.default_rng(seed)
    moods, activities = list(vocab.MOOD_BY_NAME), list(vocab.ACTIVITY_BY_NAME)
    texts = dict.fromkeys(sample_prompts(prompts * 2, seed=seed))
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    while len(entries) < prompts:
        if rng.random() < slot_share:
            params = {
                "mood": str(rng.choice(moods)),
                "genre": str(rng.choice(vocab.GENRES)),
                "activity": str(rng.choice(activities)),
            }
            if rng.random() < 0.3:
                params["tempo"] = str(rng.choice(_TEMPOS))
            if rng.random() < 0.3:
                params["exclude"] = str(rng.choice(vocab.GENRES))
            identity = json.dumps(params, sort_keys=True)
            entry: dict[str, Any] = {"kind": "slots", "params": params}
        elif rng.random() < 0.5:
            mood, genre = str(rng.choice(moods)), str(rng.choice(vocab.GENRES))
            activity = str(rng.choice(activities))
            wordings = [p.format(mood=mood, genre=genre, activity=activity) for p in _PHRASINGS]
            identity = wordings[0]
            entry = {"kind": "text", "prompt": wordings[0], "variants": wordings[1:]}
        else:
            identity = texts.popitem()[0] if texts else f"music {len(entries)}"
            entry = {"kind": "text", "prompt": identity, "variants": []}
        if identity in seen or not _servable(entry):
            continue
        seen.add(identity)
        entries.append(entry)
    weights = 1.0 / np.arange(1, prompts + 1) ** exponent
    weights /= weights.sum()
    for rank, (entry, weight) in enumerate(zip(entries, weights, strict=True), start=1):
        entry["rank"], entry["weight"] = rank, round(float(weight), 8)
    return entries


_PARSER = IntentParser(vocab.GENRES)


def _servable(entry: dict[str, Any]) -> bool:
    """Does the edge accept this request? (Random slots can contradict each other, e.g.
    excluding the wanted genre; a scenario should not count those as failures.)"""
    if entry["kind"] == "text":
        raw = urlencode({"q": entry["prompt"]})
    else:
        raw = urlencode(entry["params"])
    try:
        request = parse_query(raw.encode(), genres=vocab.GENRES, default_length=30, max_length=100)
        _PARSER.parse(request.prompt, request.slots)
    except (BadRequest, IntentError):
        return False
    return True


def query(entry: dict[str, Any], *, variant: int | None = None, n: int = 30) -> str:
    """The GET query string of an entry (or of one of its paraphrase variants)."""
    if entry["kind"] == "slots":
        return urlencode({**entry["params"], "n": n})
    prompt = entry["variants"][variant] if variant is not None else entry["prompt"]
    return urlencode({"q": prompt, "n": n})


def write(path: Path, entries: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for entry in entries:
            out.write(json.dumps(entry, sort_keys=True) + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
