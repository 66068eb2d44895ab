"""The semantic threshold on the paraphrase/contrast set, with the real int8 encoder."""

from __future__ import annotations

from edge.settings import EdgeSettings
from loadtest.semantic import evaluate, read_pairs
from models.artifacts import Artifacts

THRESHOLD = EdgeSettings().semantic_threshold


def test_the_set_is_large_enough_and_balanced() -> None:
    pairs = read_pairs()
    kinds = [p.kind for p in pairs]
    assert len(pairs) >= 60
    assert set(kinds) == {"paraphrase", "contrast"}
    assert min(kinds.count("paraphrase"), kinds.count("contrast")) >= 25


def test_no_contrast_ever_hits_and_most_paraphrases_do(loaded: Artifacts) -> None:
    with_veto, without_veto = evaluate(loaded, read_pairs(), [THRESHOLD])
    assert with_veto.veto
    assert with_veto.contrast_hits == 0, with_veto.false_hits
    assert with_veto.paraphrase_hits / with_veto.paraphrases >= 0.5
    # The veto is what keeps contrasts out: the threshold alone lets some through.
    assert without_veto.contrast_hits > 0
