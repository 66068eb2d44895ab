"""Integration fixtures: a real artifact folder, built once per session with the int8 encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import artifacts

CATALOG_SIZE = 20_000


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly built artifact folder over a 20k-track synthetic catalog."""
    out = tmp_path_factory.mktemp("artifacts") / "v"
    artifacts.build(f"synthetic:{CATALOG_SIZE}", out, progress=False)
    return out


@pytest.fixture(scope="session")
def loaded(artifact_dir: Path) -> artifacts.Artifacts:
    return artifacts.load(artifact_dir)
