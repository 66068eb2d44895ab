"""`python -m loadtest.bench quality` end to end: real artifacts over a small synthetic catalog
that learn from synthetic MPD slices outside the judged split, every method, the files it
writes; and the HTTP method on a fake node."""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from loadtest import bench
from loadtest.quality.methods import Setup, http_method, random_method
from loadtest.quality.metrics import DEPTH, KINDS
from loadtest.quality.run import _refuse_leaks, evaluate
from models import artifacts
from models.corpus import in_split, load_playlists
from models.synth_playlists import synthetic_playlists, write_slices
from models.synthetic import synthetic_catalog

TRACKS = 3000
PLAYLISTS = 400
SAMPLE = 80
N = 20
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Run:
    """One bench run: its corpus, output folder and results."""

    corpus: Path
    out: Path
    results: dict[str, Any]


def _args(corpus: Path, out: Path) -> list[str]:
    return [
        "quality",
        *("--catalog", f"synthetic:{TRACKS}", "--playlists", str(corpus)),
        *("--split", "test", "--sample", str(SAMPLE), "-n", str(N), "--out", str(out)),
        "--learn",
    ]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The bench with artifacts built from `synthetic:3000` into its output folder, learning
    from the corpus's train and validation playlists, run once."""
    root = tmp_path_factory.mktemp("quality")
    # The build makes synthetic_catalog(TRACKS, seed=BuildSettings().seed): these tracks, so
    # the playlists are over the catalog the bench builds.
    catalog = synthetic_catalog(TRACKS, seed=artifacts.BuildSettings().seed)
    corpus = root / "corpus"
    write_slices(synthetic_playlists(catalog, PLAYLISTS, seed=3), corpus)
    out = root / "out"
    assert bench.main(_args(corpus, out)) == 0
    return Run(corpus, out, json.loads((out / "results.json").read_text()))


@pytest.mark.slow
def test_writes_results_report_and_plots(run: Run) -> None:
    """results.json, report.md and both PNGs are written; the report holds every method."""
    for name in ("recall_at_k.png", "recall_by_kind.png"):
        assert (run.out / name).read_bytes().startswith(PNG)
    report = (run.out / "report.md").read_text()
    methods = ["random", "popular", "naive", "title-knn", "content", "model"]
    for method in methods:
        assert f"| {method} |" in report
    assert list(run.results["methods"]) == methods
    built = artifacts.read_manifest(run.out / "artifacts")
    assert built.training["split"] == "train+validation"
    assert built.cooccur is not None
    assert built.training["cooccur_playlists"] > 0
    assert artifacts.COOCCUR_FILE in built.files
    assert built.training["playlists_used"] == len(
        in_split(load_playlists(run.corpus), "train+validation")
    )


@pytest.mark.slow
def test_counts_add_up_to_the_sample(run: Run) -> None:
    """Judged plus skipped playlists make the sample; every judged title has one kind."""
    r = run.results
    test_split = len(in_split(load_playlists(run.corpus), "test"))
    assert r["judged"] + r["skipped_no_catalog_tracks"] == min(SAMPLE, test_split)
    assert sum(r["kinds"].values()) == r["judged"]
    assert set(r["kinds"]) <= set(KINDS)
    assert 0 <= r["unparsable"] <= r["judged"]
    assert 0.0 <= r["unslotted"] <= 1.0
    assert (r["n"], r["depth"], r["split"]) == (N, DEPTH, "test")


@pytest.mark.slow
def test_metrics_are_in_range(run: Run) -> None:
    """Shares and scores lie in [0, 1]; recall@k never falls as k grows and hits recall@n."""
    for name, m in run.results["methods"].items():
        for key in ("recall", "r_precision", "ndcg", "repeats", "empty"):
            assert 0.0 <= m[key] <= 1.0, (name, key, m[key])
        curve = m["recall_at_k"]
        assert len(curve) == DEPTH
        assert all(a <= b + 1e-9 for a, b in pairwise(curve)), name
        assert curve[N - 1] == pytest.approx(m["recall"])
        assert m["feature_distance"] >= 0.0
        assert m["p50_ms"] >= 0.0
        assert set(m["recall_by_kind"]) == set(run.results["kinds"])


@pytest.mark.slow
def test_random_is_the_feature_yardstick(run: Run) -> None:
    """Feature distances are reported as a ratio to random's, so random's own ratio is 1."""
    random = run.results["methods"]["random"]
    assert random["feature_ratio"] == pytest.approx(1.0)


@pytest.mark.slow
def test_model_recall_beats_random(run: Run) -> None:
    """The node's answers find more of the listeners' tracks than random ones do."""
    methods = run.results["methods"]
    assert methods["model"]["recall"] > methods["random"]["recall"]
    assert methods["model"]["ndcg"] > methods["random"]["ndcg"]


@pytest.mark.slow
def test_content_model_recall_beats_the_naive_encoder_baseline(run: Run) -> None:
    """The content model alone beats brute-force cosine over one encoded text per track."""
    methods = run.results["methods"]
    assert methods["content"]["recall"] > methods["naive"]["recall"]


@pytest.mark.slow
def test_learned_model_beats_random_and_naive(run: Run) -> None:
    """The node with a title model learned from synthetic playlists still beats random and
    the naive encoder baseline; its content-only answers are reported beside it."""
    methods = run.results["methods"]
    for baseline in ("random", "naive"):
        assert methods["model"]["recall"] > methods[baseline]["recall"]
        assert methods["model"]["ndcg"] > methods[baseline]["ndcg"]


@pytest.mark.slow
def test_artifacts_that_learned_from_the_judged_split_are_refused(run: Run) -> None:
    """Judging a split the artifacts learned from would measure memory, not relevance."""
    built = artifacts.read_manifest(run.out / "artifacts")
    for learned, judged in (
        ("all", "test"),
        ("all", "validation"),
        ("train+validation", "validation"),
    ):
        leaky = msgspec.structs.replace(built, training={"split": learned})
        with pytest.raises(ValueError, match="hold the judged"):
            _refuse_leaks(leaky, judged)
    _refuse_leaks(built, "test")
    _refuse_leaks(msgspec.structs.replace(built, training={"split": "train"}), "validation")
    _refuse_leaks(msgspec.structs.replace(built, training={}), "test")  # content only


@pytest.mark.slow
def test_a_rerun_reuses_build_and_track_matrix_and_repeats_itself(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run over the same folder reuses the build and the naive track matrix, and
    gives the same figures (seeded sample, seeded random method)."""
    matrices = sorted(run.out.glob("naive-tracks-*.npy"))
    assert len(matrices) == 1
    written = matrices[0].stat().st_mtime_ns
    assert bench.main(_args(run.corpus, run.out)) == 0
    assert "reusing the artifacts" in capsys.readouterr().out
    assert matrices[0].stat().st_mtime_ns == written
    again = json.loads((run.out / "results.json").read_text())
    for name, m in again["methods"].items():
        before = run.results["methods"][name]
        assert (m["recall"], m["ndcg"], m["repeats"]) == (
            before["recall"],
            before["ndcg"],
            before["repeats"],
        )


@pytest.mark.slow
def test_a_crashing_method_names_the_title_and_raises(
    run: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """Anything but IntentError from a method is a bug: the title is printed, the error kept."""
    loaded = artifacts.load(run.out / "artifacts")
    setup = Setup(loaded, seed=0, cache_dir=run.out, train=[])
    playlists = load_playlists(run.corpus)[:3]

    def boom(title: str) -> list[str]:
        raise RuntimeError("generator bug")

    methods = {"random": random_method(setup), "boom": boom}
    with pytest.raises(RuntimeError, match="generator bug"):
        evaluate(setup, playlists, methods, N)
    assert f"boom crashed on title {playlists[0].name!r}" in capsys.readouterr().err


def test_http_method_reads_track_ids_and_takes_400_as_no_answer() -> None:
    """Over HTTP the node's track ids are the answer; a 400 (a title it cannot serve) is an
    empty answer and any other failure raises."""
    asked: list[httpx.URL] = []

    def node(request: httpx.Request) -> httpx.Response:
        asked.append(request.url)
        q = request.url.params["q"]
        if q == "":
            return httpx.Response(400, json={"title": "empty request"})
        if q == "down":
            return httpx.Response(503, json={"title": "overloaded"})
        tracks = [{"id": f"t{i}", "title": "T", "artist": "A", "score": 0.5} for i in range(3)]
        return httpx.Response(200, json={"tracks": tracks, "prompt": q, "n": 3, "version": "v"})

    with httpx.Client(transport=httpx.MockTransport(node)) as client:
        answer = http_method(client, "http://edge:8000/")
        assert list(answer("rainy sunday jazz")) == ["t0", "t1", "t2"]
        assert list(answer("")) == []
        with pytest.raises(httpx.HTTPStatusError):
            answer("down")
    assert asked[0].path == "/v1/playlists"
    assert asked[0].params["n"] == str(DEPTH)
