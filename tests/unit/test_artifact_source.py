"""Catalog sources named on the build command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from models import artifacts
from models.errors import ArtifactError


@pytest.mark.parametrize("source", ["synthetic:0", "synthetic:-3", "synthetic:many"])
def test_bad_synthetic_sizes_are_refused(tmp_path: Path, source: str) -> None:
    """A synthetic source needs a positive whole number, else ArtifactError and no folder."""
    with pytest.raises(ArtifactError, match="synthetic:N"):
        artifacts.build(source, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
