"""schemathesis against the app's own OpenAPI schema, in-process: no input yields a 5xx."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar.testing import TestClient

from edge.app import EdgeApp, create_app
from edge.settings import EdgeSettings
from models.artifacts import Artifacts

# anyio's test portal leaves memory streams for the garbage collector to close.
pytestmark = pytest.mark.filterwarnings(
    "ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning"
)


@pytest.fixture(scope="module")
def app(loaded: Artifacts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeApp]:
    """A ready app (lifespan entered) that schemathesis calls directly over ASGI."""
    settings = EdgeSettings(
        warmup=False, verify_artifacts=False, data_dir=str(tmp_path_factory.mktemp("data"))
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
            response = case.call()
            assert response.status_code < 500, (case.path, case.query, case.body, response.text)

        check()
