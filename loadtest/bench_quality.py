"""`python -m loadtest.bench quality`: listener playlist titles asked as prompts, each answer
scored against that playlist's own tracks, beside baselines computed in the same run.

Every method is asked once per title for `DEPTH` tracks; recall@k for every k ≤ DEPTH comes
from that one ranking, and `-n` only picks the table's k. Metrics are the RecSys Challenge
2018 ones at track level, averaged over playlists; the ground truth G of a playlist is its
tracks that are in the catalog (playlists with none are skipped and counted):

- recall@n = |G ∩ R[:n]| / |G|;
- R-precision = |G ∩ R[:|G|]| / |G|, with R cut at DEPTH when |G| > DEPTH;
- NDCG@n, binary relevance: DCG = Σ rel_i / log2(i + 1) over i = 1..n, IDCG over
  min(|G|, n) hits;
- feature distance: L1 between the mean (energy, valence, danceability, acousticness) of the
  answer's first n tracks and of G, also as a ratio to the random method's;
- repeats: share of answers whose first n tracks hold one song twice (`models.songs`).

Methods are a dict of name → callable(title) → track ids (`BASELINES`, plus the node's
answer as `model`); one that needs training playlists reads `Setup.train`, the playlists
outside the judged split.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
import matplotlib
import msgspec
import numpy as np
import xxhash
from tqdm import tqdm

from models import artifacts
from models.catalog import PROFILE_FEATURES, Catalog
from models.corpus import CorpusPlaylist, Selection, in_split, load_playlists
from models.descriptors import embed_texts
from models.errors import ArtifactError, IntentError
from models.intent import Slots
from models.songs import song_key
from models.titles import catalog_rows

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

DEPTH = 100
"""Tracks every method is asked for (the node's longest playlist)."""
KINDS = ("artist", "genre", "mood", "activity", "era", "other")
ENCODE_BATCH = 64

Method = Callable[[str], Sequence[str]]


@dataclass(frozen=True)
class Setup:
    """What a method factory may use: the artifacts, the run's settings and training data."""

    loaded: artifacts.Artifacts
    seed: int
    cache_dir: Path
    train: list[CorpusPlaylist]
    """Playlists outside the judged split (train, plus validation when judging test)."""


# --- metrics -------------------------------------------------------------------------------


def hit_vector(ranking: Sequence[str], truth: Collection[str], depth: int) -> np.ndarray:
    """1.0 where ranking[:depth] holds a relevant track for the first time, zero-padded."""
    hits, seen = np.zeros(depth), set()
    for position, track in enumerate(ranking[:depth]):
        if track in truth and track not in seen:
            hits[position] = 1.0
            seen.add(track)
    return hits


def _ndcg(hits: np.ndarray, relevant: int, n: int) -> float:
    discounts = 1.0 / np.log2(np.arange(2, n + 2))
    ideal = float(discounts[: min(relevant, n)].sum())
    return float(hits[:n] @ discounts) / ideal


def recall_at(ranking: Sequence[str], truth: Collection[str], n: int) -> float:
    """|G ∩ R[:n]| / |G|."""
    return float(hit_vector(ranking, truth, n).sum()) / len(truth)


def r_precision(ranking: Sequence[str], truth: Collection[str]) -> float:
    """|G ∩ R[:|G|]| / |G|."""
    return recall_at(ranking, truth, len(truth))


def ndcg_at(ranking: Sequence[str], truth: Collection[str], n: int) -> float:
    """NDCG@n with binary relevance (RecSys Challenge 2018)."""
    return _ndcg(hit_vector(ranking, truth, n), len(truth), n)


def title_kind(slots: Slots | None) -> str:
    """What a title names first: an artist, genre, mood, activity, era, or nothing of these."""
    if slots is None:
        return "other"
    for kind, value in (
        ("artist", slots.artists),
        ("genre", slots.genres),
        ("mood", slots.moods),
        ("activity", slots.activities),
        ("era", slots.era),
    ):
        if value:
            return kind
    return "other"


# --- methods -------------------------------------------------------------------------------


def random_method(setup: Setup) -> Method:
    """DEPTH catalog tracks drawn at random, seeded by the run's seed and the title."""
    catalog, size = setup.loaded.catalog, len(setup.loaded.catalog)

    def answer(title: str) -> Sequence[str]:
        rng = np.random.default_rng([setup.seed, xxhash.xxh3_64_intdigest(title.encode())])
        return catalog.id_strings.get(rng.choice(size, size=min(DEPTH, size), replace=False))

    return answer


def popular_method(setup: Setup) -> Method:
    """The catalog's DEPTH most popular tracks, whatever the title."""
    catalog = setup.loaded.catalog
    top = tuple(catalog.id_strings.get(np.argsort(-catalog.popularity, kind="stable")[:DEPTH]))
    return lambda _title: top


def naive_method(setup: Setup) -> Method:
    """Brute-force cosine between the encoded title and one encoded text per track."""
    catalog, encoder = setup.loaded.catalog, setup.loaded.encoder
    matrix = _track_matrix(setup)

    def answer(title: str) -> Sequence[str]:
        scores = matrix @ encoder.encode([title])[0]
        top = np.argpartition(-scores, min(DEPTH, len(scores) - 1))[:DEPTH]
        return catalog.id_strings.get(top[np.argsort(-scores[top], kind="stable")])

    return answer


def _track_matrix(setup: Setup) -> np.ndarray:
    """Unit rows of "{title} by {artist}. {genres}." per track, cached per artifact version."""
    path = setup.cache_dir / f"naive-tracks-{setup.loaded.version}.npy"
    if path.exists():
        cached: np.ndarray = np.load(path)
        return cached
    table = setup.loaded.catalog.table
    texts = [
        f"{title} by {artist}. {', '.join(genres)}."
        for title, artist, genres in zip(
            table.column("title").to_pylist(),
            table.column("artist").to_pylist(),
            table.column("genres").to_pylist(),
            strict=True,
        )
    ]
    order = np.argsort([len(t) for t in texts], kind="stable")  # little padding per batch
    matrix = np.zeros((len(texts), setup.loaded.encoder.dim), dtype=np.float32)
    with tqdm(total=len(texts), desc="naive: encode tracks", unit="track") as bar:
        for start in range(0, len(order), ENCODE_BATCH):
            rows = order[start : start + ENCODE_BATCH]
            matrix[rows] = setup.loaded.encoder.encode([texts[r] for r in rows])
            bar.update(len(rows))
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    setup.cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    with tmp.open("wb") as handle:
        np.save(handle, matrix)
    os.replace(tmp, path)
    return matrix


def model_method(setup: Setup, learned: bool = True) -> Method:
    """The node's miss path in process: parse the title, then `PlaylistGenerator.generate`;
    `learned=False` leaves out what the artifacts learned from playlists (content only)."""
    parser, generator = setup.loaded.parser, setup.loaded.generator()
    if not learned:
        generator = dataclasses.replace(setup.loaded, titles=None, cooccur=None).generator()
    if generator.params.max_length < DEPTH:
        raise ValueError(f"the generator's max_length {generator.params.max_length} < {DEPTH}")

    def answer(title: str) -> Sequence[str]:
        try:
            playlist, _ = generator.generate(parser.parse(title), DEPTH)
        except IntentError:
            return ()
        return playlist.ids

    return answer


class _TrackOut(msgspec.Struct):
    id: str


class _Answer(msgspec.Struct):
    tracks: list[_TrackOut]


def http_method(client: httpx.Client, url: str) -> Method:
    """A running node's answer to `GET /v1/playlists?q=TITLE&n=DEPTH`; a 400 is no answer."""

    def answer(title: str) -> Sequence[str]:
        response = client.get(f"{url.rstrip('/')}/v1/playlists", params={"q": title, "n": DEPTH})
        if response.status_code == 400:  # the node's IntentError: a title it cannot serve
            return ()
        response.raise_for_status()
        return [t.id for t in msgspec.json.decode(response.content, type=_Answer).tracks]

    return answer


def title_knn_method(setup: Setup, neighbours: int = 50) -> Method:
    """Plain title-kNN: the `neighbours` training playlists whose encoded titles are nearest
    the encoded prompt (brute force), their catalog tracks voted by squared similarity."""
    catalog, encoder = setup.loaded.catalog, setup.loaded.encoder
    lookup = catalog_rows(catalog)
    members = [rows[rows >= 0] for rows in (lookup(p.tracks) for p in setup.train)]
    titles = sorted({p.name for p in setup.train})
    vectors = embed_texts(encoder, titles, batch_size=1, desc="title-knn: titles")
    at = {title: i for i, title in enumerate(titles)}
    matrix = vectors[[at[p.name] for p in setup.train]] if setup.train else vectors

    def answer(title: str) -> Sequence[str]:
        if not len(members):
            return ()
        sims = matrix @ encoder.encode([title])[0]
        k = min(neighbours, len(sims))
        near = np.argpartition(-sims, k - 1)[:k]
        votes: dict[int, float] = {}
        for i in near.tolist():
            weight = float(max(sims[i], 0.0)) ** 2
            for row in members[i].tolist():
                votes[row] = votes.get(row, 0.0) + weight
        best = sorted(votes, key=lambda r: (-votes[r], r))[:DEPTH]
        return catalog.id_strings.get(best)

    return answer


BASELINES: dict[str, Callable[[Setup], Method]] = {
    "random": random_method,
    "popular": popular_method,
    "naive": naive_method,
    "title-knn": title_knn_method,
}


# --- the run -------------------------------------------------------------------------------


def sample(
    playlists: list[CorpusPlaylist], split: Literal["test", "validation"], size: int, seed: int
) -> list[CorpusPlaylist]:
    """The first `size` playlists of the split, in pid order after a seeded shuffle."""
    chosen = sorted(in_split(playlists, split), key=lambda p: p.pid)
    random.Random(seed).shuffle(chosen)
    return chosen[:size]


class _Tally:
    """Per-method sums over the judged playlists."""

    def __init__(self) -> None:
        self.curves: list[np.ndarray] = []
        self.r_precision: list[float] = []
        self.ndcg: list[float] = []
        self.distance: list[float] = []
        self.repeats = 0
        self.empty = 0
        self.ms: list[float] = []


def evaluate(
    setup: Setup, playlists: list[CorpusPlaylist], methods: dict[str, Method], n: int
) -> dict[str, Any]:
    """Ask every method every title; return the averaged metrics and the run's counts."""
    catalog, parser = setup.loaded.catalog, setup.loaded.parser
    row_of = catalog.row_of
    profile = catalog.profile.astype(np.float64)
    keys: dict[int, str] = {}
    tallies = {name: _Tally() for name in methods}
    kinds: list[str] = []
    skipped = unparsable = unslotted = 0
    for playlist in tqdm(playlists, desc="quality", unit="playlist"):
        truth = {t for t in playlist.tracks if t in row_of}
        if not truth:
            skipped += 1
            continue
        try:
            slots: Slots | None = parser.parse(playlist.name).slots
        except IntentError:
            slots, unparsable = None, unparsable + 1
        unslotted += slots is not None and slots.is_empty()
        kinds.append(title_kind(slots))
        truth_profile = profile[[row_of[t] for t in truth]].mean(axis=0)
        for name, method in methods.items():
            start = time.perf_counter()
            answered = False
            try:  # name the title a crash came from, without catching the crash
                ranking = method(playlist.name)
                answered = True
            finally:
                if not answered:
                    print(
                        f"\n{name} crashed on title {playlist.name!r} (pid {playlist.pid})",
                        file=sys.stderr,
                    )
            tally = tallies[name]
            tally.ms.append((time.perf_counter() - start) * 1000)
            hits = hit_vector(ranking, truth, DEPTH)
            tally.curves.append(np.cumsum(hits) / len(truth))
            tally.r_precision.append(float(hits[: len(truth)].sum()) / len(truth))
            tally.ndcg.append(_ndcg(hits, len(truth), n))
            rows = [row_of[t] for t in ranking[:n] if t in row_of]
            tally.empty += not ranking
            tally.distance.append(
                float(np.abs(profile[rows].mean(axis=0) - truth_profile).sum())
                if rows
                else math.nan
            )
            songs = {_song(catalog, row, keys) for row in rows}
            tally.repeats += len(songs) < len(rows)
    return _summary(tallies, kinds, n, skipped, unparsable, unslotted)


def _song(catalog: Catalog, row: int, keys: dict[int, str]) -> str:
    key = keys.get(row)
    if key is None:
        key = keys[row] = song_key(catalog.titles.get([row])[0], catalog.artists.get([row])[0])
    return key


def _nanmean(values: list[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def _summary(
    tallies: dict[str, _Tally],
    kinds: list[str],
    n: int,
    skipped: int,
    unparsable: int,
    unslotted: int,
) -> dict[str, Any]:
    judged = len(kinds)
    if judged == 0:
        raise ValueError("no playlist of the sample has a track in the catalog")
    random_distance = _nanmean(tallies["random"].distance) if "random" in tallies else math.nan
    methods: dict[str, Any] = {}
    for name, tally in tallies.items():
        curves = np.stack(tally.curves)
        distance = _nanmean(tally.distance)
        methods[name] = {
            "recall": float(curves[:, n - 1].mean()),
            "r_precision": float(np.mean(tally.r_precision)),
            "ndcg": float(np.mean(tally.ndcg)),
            "feature_distance": distance,
            "feature_ratio": distance / random_distance,
            "repeats": tally.repeats / judged,
            "empty": tally.empty / judged,
            "p50_ms": float(np.percentile(tally.ms, 50)),
            "recall_at_k": curves.mean(axis=0).tolist(),
            "recall_by_kind": {
                kind: float(curves[[k == kind for k in kinds], n - 1].mean())
                for kind in KINDS
                if kind in kinds
            },
        }
    return {
        "n": n,
        "depth": DEPTH,
        "judged": judged,
        "skipped_no_catalog_tracks": skipped,
        "unparsable": unparsable,
        "unslotted": unslotted / judged,
        "kinds": {kind: kinds.count(kind) for kind in KINDS if kind in kinds},
        "methods": methods,
    }


def run(
    *,
    artifacts_dir: Path | None,
    catalog: str | None,
    playlists: list[str],
    split: Literal["test", "validation"],
    n: int,
    size: int,
    seed: int,
    out: Path,
    url: str | None = None,
    learn: bool = False,
) -> dict[str, Any]:
    """Load (or build) the artifacts and the corpus, judge every method, write the report.

    With `learn`, artifacts built from `catalog` also learn from the playlists outside the
    judged split; artifacts given that learned from the judged split are refused."""
    if not 1 <= n <= DEPTH:
        raise ValueError(f"-n must be 1..{DEPTH}, got {n}")
    out.mkdir(parents=True, exist_ok=True)
    if artifacts_dir is None and catalog is None:
        raise ValueError("give the artifacts folder or a catalog to build them from")
    learn_from: Selection = "train" if split == "validation" else "train+validation"
    if artifacts_dir is not None:
        folder = artifacts_dir
    else:
        folder = _built(str(catalog), out, playlists if learn else [], learn_from)
    loaded = artifacts.load(folder, encoder_threads=2)  # a node's default encoder threads
    _refuse_leaks(loaded.manifest, split)
    corpus = load_playlists(playlists)
    judged = sample(corpus, split, size, seed)
    train = in_split(corpus, learn_from)
    setup = Setup(loaded, seed, out, train)
    methods = {name: factory(setup) for name, factory in BASELINES.items()}
    if loaded.titles is not None and not url:
        methods["content"] = model_method(setup, learned=False)
    with httpx.Client(timeout=30.0) as client:
        methods["model"] = http_method(client, url) if url else model_method(setup)
        results = evaluate(setup, judged, methods, n)
    results.update(
        split=split,
        sample=size,
        seed=seed,
        version=loaded.version,
        source=loaded.manifest.source,
        tracks=len(loaded.catalog),
        model=url or "in process",
    )
    _write(results, out)
    return results


def _refuse_leaks(manifest: artifacts.Manifest, split: Literal["test", "validation"]) -> None:
    """Artifacts that learned from the judged split would be judged on what they saw."""
    learned = manifest.training.get("split")
    clean = ("train",) if split == "validation" else ("train", "train+validation")
    if learned is not None and learned not in clean:
        raise ValueError(
            f"the artifacts learned from the {learned!r} playlists, which hold the judged "
            f"{split!r} split; build them with --split "
            f"{'train' if split == 'validation' else 'train+validation'}"
        )


def _built(catalog: str, out: Path, playlists: list[str], learn_from: Selection) -> Path:
    """Artifacts built from `catalog` into out/artifacts (learning from `playlists`' split
    `learn_from` if any), reusing a build of that source and training data."""
    source = catalog if catalog.startswith("synthetic:") else str(Path(catalog).resolve())
    folder = out / "artifacts"
    wanted = {
        "sources": [str(Path(p).resolve()) for p in playlists],
        "split": learn_from if playlists else None,
    }
    if (folder / artifacts.MANIFEST).exists():
        try:
            built = artifacts.read_manifest(folder)
        except ArtifactError as exc:  # e.g. an older artifact format
            print(f"cannot reuse {folder} ({exc}); rebuilding from {source}")
        else:
            had = {
                "sources": built.training.get("sources", []),
                "split": built.training.get("split"),
            }
            if built.source == source and had == wanted:
                print(f"reusing the artifacts in {folder} (built from {source})")
                return folder
            print(f"{folder} was built from other data; rebuilding from {source}")
    settings = artifacts.BuildSettings(split=learn_from if playlists else "all")
    artifacts.build(source, folder, settings, playlists=playlists)
    return folder


# --- the report ----------------------------------------------------------------------------


def _rows(results: dict[str, Any]) -> list[list[str]]:
    n = results["n"]
    rows = [
        [
            *("method", f"recall@{n}", "R-prec", f"NDCG@{n}", "feat dist", "÷ random's"),
            *("repeats", "empty", "p50 ms"),
        ]
    ]
    for name, m in results["methods"].items():
        rows.append(
            [
                name,
                f"{m['recall']:.4f}",
                f"{m['r_precision']:.4f}",
                f"{m['ndcg']:.4f}",
                f"{m['feature_distance']:.3f}",
                f"{m['feature_ratio']:.2f}",
                f"{m['repeats']:.1%}",
                f"{m['empty']:.1%}",
                f"{m['p50_ms']:.1f}",
            ]
        )
    return rows


def _ratios(results: dict[str, Any]) -> list[str]:
    methods, n, lines = results["methods"], results["n"], []
    for baseline in ("naive", "title-knn", "content"):
        if "model" in methods and baseline in methods and methods[baseline]["recall"] > 0:
            ratio = methods["model"]["recall"] / methods[baseline]["recall"]
            lines.append(f"model ÷ {baseline} recall@{n}: {ratio:.2f}")
    if "model" in methods:
        lines.append(f"model feature distance ÷ random's: {methods['model']['feature_ratio']:.2f}")
    return lines


def _heading(results: dict[str, Any]) -> str:
    return (
        f"{results['judged']} {results['split']} playlists (sample {results['sample']}, seed "
        f"{results['seed']}; {results['skipped_no_catalog_tracks']} without catalog tracks "
        f"skipped), artifacts {results['version']} ({results['tracks']} tracks from "
        f"{results['source']}), model {results['model']}; "
        f"{results['unparsable']} titles refused by the parser (empty model answers), "
        f"{results['unslotted']:.0%} parse to no slot"
    )


def print_table(results: dict[str, Any]) -> None:
    """The metrics table and the headline ratios on stdout."""
    print(_heading(results))
    rows = _rows(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for line in _ratios(results):
        print(line)


def _write(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(_plain(results), indent=2) + "\n")
    _plot_curves(results, out / "recall_at_k.png")
    _plot_kinds(results, out / "recall_by_kind.png")
    rows = _rows(results)
    table = [
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
        *("| " + " | ".join(row) + " |" for row in rows[1:]),
    ]
    n, kinds = results["n"], results["kinds"]
    by_kind = [
        "| method | " + " | ".join(f"{k} ({c})" for k, c in kinds.items()) + " |",
        "|" + "---|" * (len(kinds) + 1),
        *(
            f"| {name} | " + " | ".join(f"{m['recall_by_kind'][k]:.4f}" for k in kinds) + " |"
            for name, m in results["methods"].items()
        ),
    ]
    lines = [
        "# Relevance on listener playlists",
        "",
        _heading(results) + ".",
        "",
        *table,
        "",
        *(f"- {line}" for line in _ratios(results)),
        f"- Every method was asked once for {DEPTH} tracks; R-precision cuts R at {DEPTH} "
        f"when a playlist has more catalog tracks. Feature distance: L1 between the mean "
        f"{', '.join(PROFILE_FEATURES)} of the first {n} tracks and of the playlist's.",
        "",
        f"## recall@{n} by title kind (playlists)",
        "",
        *by_kind,
        "",
        "![recall@k](recall_at_k.png)",
        "",
        "![recall by kind](recall_by_kind.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))


def _plain(value: Any) -> Any:
    """JSON-ready: floats to 6 significant digits, NaN to null."""
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _plot_curves(results: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ks = np.arange(1, DEPTH + 1)
    for name, m in results["methods"].items():
        ax.plot(ks, m["recall_at_k"], label=name)
    ax.axvline(results["n"], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("k (tracks asked for)")
    ax.set_ylabel("recall@k")
    ax.set_title(f"recall@k on {results['judged']} {results['split']} playlists")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_kinds(results: dict[str, Any], path: Path) -> None:
    kinds = list(results["kinds"])
    methods = results["methods"]
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (name, m) in enumerate(methods.items()):
        x = np.arange(len(kinds)) + (i - (len(methods) - 1) / 2) * width
        ax.bar(x, [m["recall_by_kind"][k] for k in kinds], width, label=name)
    ax.set_xticks(np.arange(len(kinds)), [f"{k}\n({results['kinds'][k]})" for k in kinds])
    ax.set_ylabel(f"recall@{results['n']}")
    ax.set_title("recall by what the title names (playlists per kind)")
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: dict[str, Any], out: Path) -> None:
    """The table, then where the files went."""
    print_table(results)
    print(f"wrote results.json, report.md, recall_at_k.png and recall_by_kind.png to {out}")
