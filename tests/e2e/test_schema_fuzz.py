"""schemathesis against the app's own OpenAPI schema, in-process: no input yields a 5xx."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar.testing import TestClient

from edge.app import EdgeApp, create_app
from edge.settings import EdgeSettings
from models.artifacts import Artifacts

from .conftest import served

# anyio's test portal leaves memory streams for the garbage collector to close.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


KEY = "fuzz-key-0123456789"
AUTH = {"X-API-Key": KEY}


@pytest.fixture(scope="module")
def app(loaded: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeApp]:
    """A ready app (lifespan entered) that schemathesis calls directly over ASGI; it needs
    an API key (`KEY`, every scope), as the schema says."""
    data = tmp_path_factory.mktemp("data")
    keys = data / "keys"
    keys.write_text(f"fuzz:read,events,admin:{hashlib.sha256(KEY.encode()).hexdigest()}\n")
    settings = EdgeSettings(
        warmup=False,
        verify_artifacts=False,
        data_dir=str(data),
        api_keys_file=str(keys),
    )
    app = create_app(settings, artifacts=loaded)
    with TestClient(app) as client:
        for _ in range(600):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        yield app


def test_no_input_produces_a_server_error(app: EdgeApp) -> None:
    """Generated requests (valid and invalid) for every operation are answered without a 5xx."""
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/playlists", "/readyz"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=40,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            response = case.call(headers=AUTH)
            assert response.status_code < 500, (case.path, case.query, case.body, response.text)

        check()


def test_every_phase_against_a_served_node(artifact_dir: Path, tmp_path: Path) -> None:
    """`st run` with every phase (examples, coverage, fuzzing, and stateful sequences that
    follow the schema's links from a playlist to its events) against a served node, in a
    bounded time: no 5xx, every response as the schema says, and no listener's personal
    answer reaches anyone else (`fuzz_checks.py`)."""
    data = tmp_path / "data"
    data.mkdir()
    keys = data / "keys"
    keys.write_text(f"fuzz:read,events,admin:{hashlib.sha256(KEY.encode()).hexdigest()}\n")
    tally = tmp_path / "tally.json"
    with served(artifact_dir, data, EDGE_API_KEYS_FILE=str(keys)) as port:
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("st")),
                "--config-file", str(Path(__file__).with_name("schemathesis.toml")),
                "run",
                f"http://127.0.0.1:{port}/schema/openapi.json",
                "--phases", "examples,coverage,fuzzing,stateful",
                "--max-time", "60",
                "--max-examples", "30",
                "--seed", "20261123",
                "--generation-deterministic",
                "--header", f"X-API-Key: {KEY}",
                "--no-color",
            ],
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": "tests.e2e.fuzz_checks",
                "FUZZ_TALLY": str(tally),
                "PYTHONPATH": str(Path(__file__).parents[2]),
            },
            capture_output=True,
            text=True,
            timeout=150,
            cwd=tmp_path,  # st keeps its own files in the working directory
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Stateful" in run.stdout
    seen = json.loads(tally.read_text())
    assert seen["personal"] > 0
    assert seen["anonymous"] > 0
    assert seen["events"] > 0
