"""`python -m loadtest.bench semantic`: are semantic hits right, and how many can be served?

Pairs are built without hand labels (`models.semantic`): paraphrase, near and contrast pairs
from templates over the catalog's genres, moods and activities, and, with `--playlists`,
pairs of the train split's playlist titles that the parser reads into the same slots. Every
prompt is answered fresh through the miss path; a pair is correct when B's answer shares at
least half of A's tracks and A's tracks meet B's hard constraints.

Per bucket (the kinds of slot a pair sets), the threshold is the lowest cosine at which the
incorrect share of the semantic hits it serves has a one-sided Clopper–Pearson upper bound
at or under the target. Reported: thresholds, the semantic hits each bucket serves and their
bound; over every pair, the share of correct pairs served (by one canonical key or by the
cosine), the incorrect share of all hits with its bound, contrast hits; the repository's own
pairs (`tests/data/semantic_pairs.tsv`) under the same thresholds; and a plot of served and
incorrect shares against the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec
from tqdm import tqdm

from models.artifacts import Artifacts
from models.corpus import in_selection, iter_playlists
from models.semantic import (
    GRID,
    NEVER,
    Judged,
    Pair,
    Thresholds,
    calibrate,
    judge_on,
    served,
    template_pairs,
    title_pairs,
    upper_bound,
)

PAIRS = Path(__file__).parents[1] / "tests" / "data" / "semantic_pairs.tsv"


def read_pairs(path: Path = PAIRS) -> list[Pair]:
    """The repository's hand-written paraphrase and contrast pairs."""
    pairs = []
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            kind, a, b = line.split("\t")
            pairs.append(Pair(kind, a, b))
    return pairs


def judge_all(loaded: Artifacts, pairs: Sequence[Pair], desc: str = "pairs") -> list[Judged]:
    """Every pair judged on this artifact's miss path (n = 30), with a progress bar."""
    prompts = {text for pair in pairs for text in (pair.a, pair.b)}
    with tqdm(total=len(prompts), desc=f"semantic: {desc}", unit="prompt") as bar:
        return judge_on(
            loaded.generator(), loaded.parser, pairs, progress=lambda _done: bar.update(1)
        )


def summary(judged: Sequence[Judged], thresholds: Thresholds) -> dict[str, Any]:
    """What the edge would serve under `thresholds`, and how much of it is right."""
    hits = [j for j in judged if served(j, thresholds)]
    semantic = [j for j in hits if not j.same_key]
    wrong = sum(not j.correct for j in hits)
    wrong_semantic = sum(not j.correct for j in semantic)
    right = [j for j in judged if j.correct and j.pair.kind != "contrast"]
    paraphrases = [j for j in judged if j.pair.kind == "paraphrase"]
    buckets = {}
    for name in sorted({j.bucket for j in judged}):
        inside = [j for j in semantic if j.bucket == name]
        bad = sum(not j.correct for j in inside)
        buckets[name] = {
            "threshold": thresholds.threshold(name),
            "pairs": thresholds.pairs.get(name, 0),
            "semantic_hits": len(inside),
            "wrong": bad,
            "bound": round(upper_bound(bad, len(inside), thresholds.confidence), 4),
        }
    return {
        "pairs": len(judged),
        "kinds": {
            k: sum(j.pair.kind == k for j in judged) for k in ("paraphrase", "near", "contrast")
        },
        "hits": len(hits),
        "exact_hits": len(hits) - len(semantic),
        "semantic_hits": len(semantic),
        "wrong_hits": wrong,
        "wrong_bound": round(upper_bound(wrong, len(hits), thresholds.confidence), 4),
        "wrong_semantic_hits": wrong_semantic,
        "wrong_semantic_bound": round(
            upper_bound(wrong_semantic, len(semantic), thresholds.confidence), 4
        ),
        "correct_pairs": len(right),
        "correct_served": sum(served(j, thresholds) for j in right),
        "paraphrases": len(paraphrases),
        "paraphrases_served": sum(served(j, thresholds) for j in paraphrases),
        "correct_paraphrases": sum(j.correct for j in paraphrases),
        "correct_paraphrases_served": sum(j.correct and served(j, thresholds) for j in paraphrases),
        "contrast_hits": sum(j.pair.kind == "contrast" and served(j, thresholds) for j in judged),
        "contrasts": sum(j.pair.kind == "contrast" for j in judged),
        "buckets": buckets,
    }


def run(
    loaded: Artifacts,
    playlists: Sequence[str],
    out: Path,
    target: float = 0.01,
    confidence: float = 0.95,
) -> dict[str, Any]:
    """Calibrate on template and train-title pairs, report, and judge the repository's pairs."""
    out.mkdir(parents=True, exist_ok=True)
    pairs = template_pairs(loaded.catalog.genre_names)
    if playlists:
        titles = [p.name for p in iter_playlists(playlists) if in_selection(p.pid, "train")]
        pairs += title_pairs(titles, loaded.parser)
    judged = judge_all(loaded, pairs, "dev pairs")
    thresholds = calibrate(judged, target, confidence)
    repo = judge_all(loaded, read_pairs(), "repository pairs")
    results = {
        "version": loaded.version,
        "tracks": len(loaded.catalog),
        "target": target,
        "confidence": confidence,
        "thresholds": msgspec.to_builtins(thresholds),
        "dev": summary(judged, thresholds),
        "repository": summary(repo, thresholds),
    }
    if loaded.semantic is not None:
        results["stored"] = msgspec.to_builtins(loaded.semantic)
    (out / "semantic.json").write_bytes(msgspec.json.format(msgspec.json.encode(results)))
    _plot(judged, out / "semantic_thresholds.png")
    return results


def _plot(judged: Sequence[Judged], path: Path) -> None:
    """Share of correct pairs served and incorrect share of hits, against one threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    decided = [j for j in judged if j.same_slots and not j.same_key and not j.conflict]
    right = [j for j in decided if j.correct]
    served_share, wrong_share = [], []
    for t in GRID:
        hits = [j for j in decided if j.similarity >= t]
        served_share.append(sum(j.similarity >= t for j in right) / max(1, len(right)))
        wrong_share.append(sum(not j.correct for j in hits) / max(1, len(hits)))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(GRID, served_share, label="correct pairs served")
    ax.plot(GRID, wrong_share, label="incorrect share of hits")
    ax.axhline(0.01, color="grey", linestyle=":", label="1 % target")
    ax.set_xlabel("cosine threshold (pairs with the same slots and different keys)")
    ax.set_ylabel("share")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(results: dict[str, Any]) -> None:
    print(f"artifacts {results['version']} ({results['tracks']} tracks)")
    th = results["thresholds"]
    default = "never" if th["default"] >= NEVER else th["default"]
    print(f"thresholds (incorrect ≤ {results['target']:.0%} at {results['confidence']:.0%}):")
    print(f"  default {default}")
    for name, row in results["dev"]["buckets"].items():
        shown = "never" if row["threshold"] >= NEVER else row["threshold"]
        print(
            f"  {name:<18} {shown!s:>5}  pairs {row['pairs']:>4}  semantic hits "
            f"{row['semantic_hits']:>3}  wrong {row['wrong']:>2}  bound {row['bound']:.3f}"
        )
    for name in ("dev", "repository"):
        s = results[name]
        print(
            f"{name}: {s['pairs']} pairs {s['kinds']}; served {s['hits']} "
            f"({s['exact_hits']} by one key, {s['semantic_hits']} by cosine); "
            f"incorrect {s['wrong_hits']} (bound {s['wrong_bound']:.3f}; by cosine "
            f"{s['wrong_semantic_hits']}, bound {s['wrong_semantic_bound']:.3f})"
        )
        print(
            f"  correct paraphrases served {s['correct_paraphrases_served']}/"
            f"{s['correct_paraphrases']}; paraphrases served {s['paraphrases_served']}/"
            f"{s['paraphrases']}; correct pairs served {s['correct_served']}/"
            f"{s['correct_pairs']}; contrast hits {s['contrast_hits']}/{s['contrasts']}"
        )
