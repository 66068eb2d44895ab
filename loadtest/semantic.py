"""Calibration of the semantic cache threshold on a paraphrase/contrast set.

Each pair is replayed the way the edge does it: prompt A is parsed, encoded and remembered
in a `SemanticIndex`; prompt B is parsed and encoded and looked up. A paraphrase should hit,
a contrast ("jazz" / "no jazz") never. Printed per threshold, with and without the slot veto.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np

from cache.semantic import SemanticIndex
from models.artifacts import Artifacts
from models.intent import Intent

PAIRS = Path(__file__).parents[1] / "tests" / "data" / "semantic_pairs.tsv"


class Pair(msgspec.Struct, frozen=True):
    kind: str  # "paraphrase" or "contrast"
    a: str
    b: str


def read_pairs(path: Path = PAIRS) -> list[Pair]:
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            kind, a, b = line.split("\t")
            pairs.append(Pair(kind, a, b))
    return pairs


def signature(intent: Intent, n: int = 30) -> str:
    return f"{n}|{msgspec.json.encode(intent.slots).decode()}"


class Outcome(msgspec.Struct, frozen=True):
    threshold: float
    veto: bool
    paraphrase_hits: int
    paraphrases: int
    contrast_hits: int
    contrasts: int
    false_hits: list[str]


def evaluate(artifacts: Artifacts, pairs: list[Pair], thresholds: list[float]) -> list[Outcome]:
    parser, encoder = artifacts.parser, artifacts.generator().encoder
    intents = [(parser.parse(p.a), parser.parse(p.b)) for p in pairs]
    texts = [t.query_text for pair in intents for t in pair]
    # One prompt at a time, as a cold edge would encode them (int8 batches shift vectors).
    vectors = np.stack([encoder.encode([t])[0] for t in texts])
    outcomes = []
    for veto in (True, False):
        for threshold in thresholds:
            hits = {"paraphrase": 0, "contrast": 0}
            false_hits = []
            for i, (pair, (a, b)) in enumerate(zip(pairs, intents, strict=True)):
                index = SemanticIndex(encoder.dim, capacity=4, threshold=threshold)
                sig_a, sig_b = (signature(a), signature(b)) if veto else ("", "")
                index.add(vectors[2 * i], "a", sig_a, a.text)
                if index.nearest(vectors[2 * i + 1], sig_b) is not None:
                    hits[pair.kind] += 1
                    if pair.kind == "contrast":
                        false_hits.append(f"{pair.a} / {pair.b}")
            outcomes.append(
                Outcome(
                    threshold,
                    veto,
                    hits["paraphrase"],
                    sum(p.kind == "paraphrase" for p in pairs),
                    hits["contrast"],
                    sum(p.kind == "contrast" for p in pairs),
                    false_hits,
                )
            )
    return outcomes


def report(outcomes: list[Outcome]) -> None:
    print("threshold  veto  paraphrase hit rate  contrast false-hit rate")
    for o in outcomes:
        print(
            f"  {o.threshold:.2f}     {'yes' if o.veto else 'no ':<4}  "
            f"{o.paraphrase_hits:>3}/{o.paraphrases} = {o.paraphrase_hits / o.paraphrases:.2f}"
            f"        {o.contrast_hits:>3}/{o.contrasts} = {o.contrast_hits / o.contrasts:.2f}"
        )
