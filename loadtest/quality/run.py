"""The run: judge every method on a sample of one split, against the artifacts given or built."""

from __future__ import annotations

import math
import random
import sys
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
from tqdm import tqdm

from loadtest.quality.methods import BASELINES, Method, Setup, http_method, model_method
from loadtest.quality.metrics import DEPTH, KINDS, hit_vector, ndcg, title_kind
from loadtest.quality.report import write
from models import artifacts
from models.catalog import Catalog
from models.corpus import CorpusPlaylist, Selection, in_split, load_playlists
from models.errors import ArtifactError, IntentError
from models.intent import Slots
from models.songs import song_key


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
            tally.ndcg.append(ndcg(hits, len(truth), n))
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
    write(results, out)
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
