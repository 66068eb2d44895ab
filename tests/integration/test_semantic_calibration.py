"""Semantic hits judged by answer overlap on a built artifact, with the real int8 encoder."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from loadtest.semantic import judge_all, read_pairs, run, summary
from models import artifacts
from models.artifacts import Artifacts
from models.errors import ArtifactError
from models.semantic import NEVER, THRESHOLDS_FILE, Thresholds


def test_the_set_is_large_enough_and_balanced() -> None:
    pairs = read_pairs()
    kinds = [p.kind for p in pairs]
    assert len(pairs) >= 60
    assert set(kinds) == {"paraphrase", "contrast"}
    assert min(kinds.count("paraphrase"), kinds.count("contrast")) >= 25


def test_the_build_stores_thresholds_with_the_version(loaded: Artifacts) -> None:
    stored = loaded.semantic
    assert stored is not None
    assert stored.pairs  # judged pairs per bucket
    assert all(0.5 <= t <= NEVER for t in (stored.default, *stored.buckets.values()))
    on_disk = msgspec.json.decode((loaded.path / THRESHOLDS_FILE).read_bytes(), type=Thresholds)
    assert on_disk == stored
    assert THRESHOLDS_FILE in loaded.manifest.files  # part of the version's digest


def test_edited_thresholds_are_refused(artifact_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(artifact_dir, copy)
    (copy / THRESHOLDS_FILE).write_bytes(b'{"default": 0.5}')
    with pytest.raises(ArtifactError):
        artifacts.load(copy)


def test_repository_pairs_under_the_stored_thresholds(loaded: Artifacts) -> None:
    assert loaded.semantic is not None
    judged = judge_all(loaded, read_pairs(), "repository pairs")
    s = summary(judged, loaded.semantic)
    assert s["contrast_hits"] == 0
    # One canonical key means one answer: those hits are right by construction.
    assert all(j.correct for j in judged if j.same_key)
    assert s["paraphrases_served"] / s["paraphrases"] >= 0.5
    assert s["wrong_semantic_bound"] <= 1.0


def test_the_benchmark_writes_its_report(loaded: Artifacts, tmp_path: Path) -> None:
    results = run(loaded, [], tmp_path)
    assert (tmp_path / "semantic_thresholds.png").stat().st_size > 0
    saved = msgspec.json.decode((tmp_path / "semantic.json").read_bytes())
    assert saved["dev"]["contrast_hits"] == 0
    assert saved["dev"]["pairs"] == results["dev"]["pairs"] > 100
