"""The Dockerfile passes hadolint (no ignored rules) and keeps its required shape."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

DOCKERFILE = Path(__file__).parents[1] / "Dockerfile"


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multistage_non_root_with_healthcheck() -> None:
    text = DOCKERFILE.read_text()
    assert text.count("\nFROM ") + text.startswith("FROM ") >= 2 or text.count("FROM ") >= 2
    assert "USER 10001" in text  # the non-root uid created above
    assert "HEALTHCHECK" in text
    assert "/readyz" in text
    assert 'ENTRYPOINT ["python", "-m", "edge"]' in text
    assert "hadolint ignore" not in text
