"""A second artifact version on a live node: loaded and checked in the background, given
10 %, then 50 % of listeners, promoted and rolled back under steady traffic, with no failed
request and every listener kept on one version while the share grows."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from edge import shadow
from models import artifacts

from .conftest import SERVING, Client, ClientFactory, served, service_of, wait_until

ADMIN = {"authorization": "Bearer s3cret"}
USERS = [f"listener-{n}" for n in range(120)]


@pytest.fixture(scope="module")
def candidate_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another artifact version: a smaller catalog, so another version id."""
    out = tmp_path_factory.mktemp("candidate") / "v2"
    artifacts.build("synthetic:3000", out, progress=False)
    return out


class Listeners:
    """Listeners ask for personal playlists, four at a time, until stopped; what version
    answered each is kept per phase."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.phase = "start"
        self.statuses: list[int] = []
        self.seen: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._stop = asyncio.Event()

    async def run(self, offset: int = 0) -> None:
        for number in itertools.count(offset):
            if self._stop.is_set():
                return
            user = USERS[number % len(USERS)]
            body = {"schema_version": 1, "prompt": "warm evening soul", "n": 5, "user": user}
            answer = await self.client.post("/v1/playlists", json=body)
            self.statuses.append(answer.status_code)
            if answer.status_code == 200:
                variant = answer.headers["x-variant"]
                self.seen[self.phase][user].add(f"{variant}:{answer.json()['version']}")
            await asyncio.sleep(0)

    async def settle(self, phase: str) -> None:
        """Start a phase; return once every listener was answered in it."""
        self.phase = phase

        async def everyone() -> bool:
            return all(self.seen[phase][user] for user in USERS)

        await wait_until(everyone, 60)

    def stop(self) -> None:
        self._stop.set()

    def versions(self, phase: str) -> dict[str, str]:
        """Each listener's one version in `phase` (fails if one saw two)."""
        kept = {}
        for user, seen in self.seen[phase].items():
            assert len(seen) == 1, (phase, user, seen)
            kept[user] = next(iter(seen))
        return kept


async def _admin(client: Client, **body: object) -> dict[str, object]:
    answer = await client.post("/admin/versions", json=body, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def test_a_rollout_and_its_rollback_fail_no_request(
    edge: ClientFactory, candidate_dir: Path
) -> None:
    async with edge(admin_key="s3cret", prewarm_seconds=5.0) as client:
        old = (await client.get("/admin/versions", headers=ADMIN)).json()["primary"]
        listeners = Listeners(client)
        running = asyncio.gather(*(listeners.run(offset) for offset in (0, 30, 60, 90)))
        await listeners.settle("before")
        await _admin(client, action="load", artifacts=str(candidate_dir))

        async def loaded() -> bool:
            doc = (await client.get("/admin/versions", headers=ADMIN)).json()
            assert doc["state"] != "failed", doc
            return doc["state"] == "ready"  # type: ignore[no-any-return]

        await wait_until(loaded, 60)
        new = (await client.get("/admin/versions", headers=ADMIN)).json()["candidate"]
        assert new != old
        await listeners.settle("loaded")  # loaded, no share yet: nobody sees it

        await _admin(client, action="split", percent=10)
        await listeners.settle("10%")
        await _admin(client, action="split", percent=50)
        await listeners.settle("50%")
        await _admin(client, action="promote")
        await listeners.settle("promoted")
        await _admin(client, action="rollback")
        await listeners.settle("rolled back")
        listeners.stop()
        await running

        assert set(listeners.statuses) == {200}
        primary_old, primary_new = f"primary:{old}", f"primary:{new}"
        for phase in ("before", "loaded", "rolled back"):
            assert set(listeners.versions(phase).values()) == {primary_old}, phase
        assert set(listeners.versions("promoted").values()) == {primary_new}
        ten, fifty = listeners.versions("10%"), listeners.versions("50%")
        on_ten = {u for u, v in ten.items() if v == f"candidate:{new}"}
        on_fifty = {u for u, v in fifty.items() if v == f"candidate:{new}"}
        assert 0.02 * len(USERS) <= len(on_ten) <= 0.2 * len(USERS)
        assert 0.35 * len(USERS) <= len(on_fifty) <= 0.65 * len(USERS)
        assert on_ten <= on_fifty  # a listener on the candidate stays there as it grows
        metrics = (await client.get("/metrics")).text
        assert f'edge_variant_answers_total{{variant="candidate",version="{new}"}}' in metrics


async def test_version_operations_out_of_turn_are_refused(
    edge: ClientFactory, candidate_dir: Path, tmp_path: Path
) -> None:
    async with edge(admin_key="s3cret", versions_memory_mb=1) as small:
        refused = await small.post(
            "/admin/versions",
            json={"action": "load", "artifacts": str(candidate_dir)},
            headers=ADMIN,
        )
        assert refused.status_code == 409
        assert "EDGE_VERSIONS_MEMORY_MB" in refused.json()["detail"]
    async with edge(admin_key="s3cret") as client:
        for body in (
            {"action": "promote"},
            {"action": "rollback"},
            {"action": "split", "percent": 5},
        ):
            answer = await client.post("/admin/versions", json=body, headers=ADMIN)
            assert answer.status_code == 409, body
        assert (await client.post("/admin/versions", json={"action": "promote"})).status_code == 401
        missing = {"action": "load", "artifacts": str(tmp_path / "nowhere")}
        assert (
            await client.post("/admin/versions", json=missing, headers=ADMIN)
        ).status_code == 400
        broken = tmp_path / "broken"  # a manifest that reads well over a corrupt index
        broken.mkdir()
        for file in candidate_dir.iterdir():
            (broken / file.name).write_bytes(file.read_bytes())
        index = bytearray((broken / "index.hnsw").read_bytes())
        index[-1] ^= 0xFF
        (broken / "index.hnsw").write_bytes(bytes(index))
        await _admin(client, action="load", artifacts=str(broken))

        async def failed() -> bool:
            doc = (await client.get("/admin/versions", headers=ADMIN)).json()
            return doc["state"] == "failed"  # type: ignore[no-any-return]

        await wait_until(failed, 30)
        assert (await client.get("/v1/playlists?q=calm+piano&n=3")).status_code == 200


def test_signals_load_promote_and_roll_back_a_served_node(
    artifact_dir: Path, candidate_dir: Path, tmp_path: Path
) -> None:
    """SIGHUP loads EDGE_CANDIDATE_ARTIFACTS, SIGUSR1 promotes it, SIGUSR2 rolls back."""
    env = {"EDGE_ADMIN_KEY": "s3cret", "EDGE_CANDIDATE_ARTIFACTS": str(candidate_dir)}
    with served(artifact_dir, tmp_path / "data", **env) as port:
        workers = psutil.Process(SERVING[port]).children(recursive=True)
        assert workers

        def versions() -> dict[str, object]:
            answer = httpx.get(f"http://127.0.0.1:{port}/admin/versions", headers=ADMIN)
            return answer.json()  # type: ignore[no-any-return]

        def signal_and_wait(
            number: signal.Signals, done: Callable[[dict[str, object]], bool]
        ) -> None:
            for worker in workers:
                worker.send_signal(number)
            deadline = time.monotonic() + 60
            while not done(versions()):
                assert time.monotonic() < deadline, (number, versions())
                time.sleep(0.1)

        old = versions()["primary"]
        signal_and_wait(signal.SIGHUP, lambda doc: doc["state"] == "ready")
        new = versions()["candidate"]
        signal_and_wait(signal.SIGUSR1, lambda doc: doc["primary"] == new)
        query = f"http://127.0.0.1:{port}/v1/playlists?q=calm+piano&n=3"
        assert httpx.get(query).json()["version"] == new
        signal_and_wait(signal.SIGUSR2, lambda doc: doc["primary"] == old)
        assert httpx.get(query).json()["version"] == old


async def test_shadow_comparisons_measure_agreement_off_the_request_path(
    edge: ClientFactory, candidate_dir: Path
) -> None:
    # No semantic cache: every request below is a miss of its own.
    async with edge(admin_key="s3cret", semantic=False) as client:
        await _admin(client, action="load", artifacts=str(candidate_dir))

        async def loaded() -> bool:
            doc = (await client.get("/admin/versions", headers=ADMIN)).json()
            return doc["state"] == "ready"  # type: ignore[no-any-return]

        await wait_until(loaded, 60)
        await _admin(client, action="shadow", ratio=1.0)
        urls = [f"/v1/playlists?q=late+night+drive+{n}&n=10" for n in range(4)]
        urls += ["/v1/playlists?mood=calm&n=10", "/v1/playlists?genre=jazz&mood=happy&n=10"]
        urls += ["/v1/playlists?q=coffee+shop&genre=jazz&n=10"]
        for url in urls:
            answer = await client.get(url)
            assert answer.status_code == 200
            assert answer.headers["x-variant"] == "primary"  # shadowing serves nobody

        service = service_of(client)
        expected: dict[str, int] = defaultdict(int)
        for url in urls:
            intent, _ = service.intent(service.parse_get(url.split("?")[1].encode()))
            expected[shadow.kind(intent)] += 1
        assert len(expected) >= 2  # more than one kind of request

        async def compared() -> bool:
            doc = (await client.get("/admin/versions", headers=ADMIN)).json()
            return {k: v["count"] for k, v in doc["agreement"].items()} == expected

        await wait_until(compared, 30)
        report = (await client.get("/admin/versions", headers=ADMIN)).json()["agreement"]
        for figures in report.values():
            assert 0 <= figures["overlap_mean"] <= 1
            assert -1 <= figures["rank_correlation_mean"] <= 1
            assert sum(figures["overlap_histogram"]) == figures["count"]
        metrics = (await client.get("/metrics")).text
        for slot_kind, count in expected.items():
            assert f'edge_shadow_overlap_count{{kind="{slot_kind}"}} {count:.1f}' in metrics
            assert (
                f'edge_shadow_rank_correlation_count{{kind="{slot_kind}"}} {count:.1f}' in metrics
            )
        await _admin(client, action="shadow", ratio=0.0)
        await client.get("/v1/playlists?q=one+more+prompt&n=10")
        await asyncio.sleep(0.5)
        doc = (await client.get("/admin/versions", headers=ADMIN)).json()
        assert sum(v["count"] for v in doc["agreement"].values()) == len(urls)


async def test_the_configured_share_applies_once_the_candidate_is_ready(
    edge: ClientFactory, candidate_dir: Path
) -> None:
    settings = {"admin_key": "s3cret", "split_percent": 100.0, "split_experiment": "x1"}
    async with edge(**settings) as client:
        await _admin(client, action="load", artifacts=str(candidate_dir))

        async def loaded() -> bool:
            doc = (await client.get("/admin/versions", headers=ADMIN)).json()
            return doc["state"] == "ready"  # type: ignore[no-any-return]

        await wait_until(loaded, 60)
        doc = (await client.get("/admin/versions", headers=ADMIN)).json()
        assert (doc["percent"], doc["experiment"]) == (100.0, "x1")
        answer = await client.get("/v1/playlists?q=calm+piano&n=3")
        assert answer.headers["x-variant"] == "candidate"
        assert answer.json()["version"] == doc["candidate"]
