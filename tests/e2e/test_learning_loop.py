"""The learning loop end to end: listeners with hidden tastes use a node (its event log in a
real redis-server, its archiver writing Parquet), a retrain on the archive makes a candidate
version, and the rollout machinery shows it fits those listeners better before it is
promoted; rolling back still serves the version before."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from edge.app import create_app
from edge.settings import EdgeSettings
from loadtest.bench_loop import (
    LONG,
    Admin,
    answers,
    hidden_tastes,
    listen,
    roll_out,
)
from loadtest.prompts import unique_prompts
from loadtest.redis_server import RedisServer
from models import artifacts
from regional.archive import read_archive
from tests.clock import FakeClock

from .conftest import wait_until

CATALOG = "synthetic:3000"
KEY = "s3cret"


@pytest.fixture(scope="module")
def content_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A content-only version (no corpus, no events) over a small synthetic catalog."""
    out = tmp_path_factory.mktemp("content") / "v1"
    artifacts.build(CATALOG, out, progress=False)
    return out


async def test_events_retrain_a_candidate_that_fits_the_listeners_better(
    content_dir: Path, redis_server: RedisServer, clock: FakeClock, tmp_path: Path
) -> None:
    """Recall against the listeners' preferred tracks at least doubles from the served
    version to the candidate learned from their events, both measured in one 50 % split;
    the shadow comparison sees the candidate change the answers; promote and roll back
    serve the candidate, then the version before."""
    archive = tmp_path / "archive"
    settings = EdgeSettings(
        warmup=False,
        verify_artifacts=False,
        global_url="none",
        data_dir=str(tmp_path / "edge-data"),
        l2_url=redis_server.url,
        archive_dir=str(archive),
        admin_key=KEY,
        semantic=False,
    )
    app = create_app(settings, artifacts=artifacts.load(content_dir), clock=clock)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://edge") as client,
    ):
        await app.node.wait_ready()
        prompts = unique_prompts(8, seed=1)
        first = await answers(client, prompts, LONG)
        tastes = hidden_tastes(first, seed=1)
        for prompt, wanted in tastes.preferred.items():  # mostly what the node ranks low
            assert len(wanted & set(first[prompt][:30])) < len(wanted) / 2

        sent = await listen(client, tastes, listeners=5, seed=1)
        assert sent == 8 * 5 * LONG
        events = app.node.events
        assert events is not None
        archiver = events.archiver
        assert archiver is not None

        async def archived() -> bool:
            return archiver.written >= sent

        await wait_until(archived, 30)
        held = read_archive(archive)
        assert held.num_rows == sent
        users = set(held.column("user").to_pylist())
        assert not any(u.startswith("listener-") for u in users)  # keyed pseudonyms only

        candidate = tmp_path / "candidate"
        await asyncio.to_thread(
            artifacts.build, CATALOG, candidate, progress=False, events=[archive]
        )
        learned = artifacts.read_manifest(candidate).training["events"]
        assert learned["label_rules_version"] == 1
        assert learned["events"] == sent
        assert learned["prompts"] == len(prompts)
        assert learned["accepts"] > 0
        assert learned["rejects"] > 0
        for path in candidate.iterdir():  # nothing personal in the artifact
            data = path.read_bytes()
            assert not any(u.encode() in data for u in users), path.name

        figures = await roll_out(client, Admin(client, KEY), candidate, tastes, n=30, shadow_n=29)
        assert figures["candidate_version"] != figures["current_version"]
        assert figures["recall_current"] > 0
        assert figures["recall_candidate"] >= 2 * figures["recall_current"]
        assert figures["shadow_comparisons"] >= len(prompts)
        assert figures["shadow_overlap"] < 1  # the candidate answers these prompts differently
        assert figures["served_after_promote"] == figures["candidate_version"]
        assert figures["served_after_rollback"] == figures["current_version"]
        doc = await Admin(client, KEY).versions()
        assert (doc["primary"], doc["candidate"]) == (
            figures["current_version"],
            figures["candidate_version"],
        )
