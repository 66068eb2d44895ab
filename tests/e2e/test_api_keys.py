"""API keys: 401 without a good key, 403 outside its scopes, and no cached answer for anyone
without one (the lean hit path checks too)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from .conftest import ClientFactory

READER, WRITER, OPERATOR = "rk-0123456789abcdef", "ek-0123456789abcdef", "ak-0123456789abcdef"
URL = "/v1/playlists?q=sunny+afternoon+reggae&n=5"


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> _Records:
    """Every edge and models log record, as the app emits them (its own JSON set-up, and
    Litestar's on the root logger, would keep them from pytest's caplog)."""
    records = _Records()
    monkeypatch.setattr("edge.logs.configure", lambda _level: None)
    for name in ("edge", "models"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [records])
        monkeypatch.setattr(logger, "propagate", False)
        monkeypatch.setattr(logger, "level", logging.DEBUG)
    return records


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    path.write_text(
        "# name:scopes:sha256[:tier]\n"
        f"web:read:{_sha(READER)}\n"
        f"app:read,events:{_sha(WRITER)}:gold\n"
        f"ops:admin:{_sha(OPERATOR)}\n"
    )
    return path


async def test_playlists_need_a_key_with_the_read_scope(
    edge: ClientFactory, keys_file: Path
) -> None:
    async with edge(api_keys_file=str(keys_file)) as client:
        missing = await client.get(URL)
        assert missing.status_code == 401
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert missing.headers["www-authenticate"].startswith("ApiKey")
        wrong = await client.get(URL, headers={"x-api-key": "not-a-key"})
        assert wrong.status_code == 401
        first = await client.get(URL, headers={"x-api-key": READER})
        assert first.status_code == 200
        assert first.headers["x-cache"] == "MISS"
        again = await client.get(URL, headers={"x-api-key": WRITER})
        assert again.headers["x-cache"] == "HIT-L1"  # the lean hit path, with a key
        for headers in ({}, {"x-api-key": "nope"}, {"x-api-key": OPERATOR}):
            refused = await client.get(URL, headers=headers)  # cached, yet not served
            assert refused.status_code in (401, 403), headers
            assert "tracks" not in refused.text
        assert (await client.get(URL, headers={"x-api-key": OPERATOR})).status_code == 403
        posted = await client.post(
            "/v1/playlists",
            json={"schema_version": 1, "prompt": "calm piano"},
            headers={"x-api-key": READER},
        )
        assert posted.status_code == 200


async def test_events_need_the_events_scope(edge: ClientFactory, keys_file: Path) -> None:
    body = {
        "events": [
            {
                "event_id": "evt-key-0001",
                "type": "play",
                "playlist": "fp",
                "prompt_key": "pk",
                "track_id": "t1",
                "position": 0,
                "ts": "2026-11-23T10:00:00Z",
                "user": "u1",
            }
        ]
    }
    async with edge(api_keys_file=str(keys_file)) as client:
        reader = await client.post("/v1/events", json=body, headers={"x-api-key": READER})
        assert reader.status_code == 403
        assert "'web'" in reader.json()["detail"]
        writer = await client.post("/v1/events", json=body, headers={"x-api-key": WRITER})
        assert writer.status_code == 200


async def test_health_and_metrics_are_open_unless_protected(
    edge: ClientFactory, keys_file: Path
) -> None:
    async with edge(api_keys_file=str(keys_file)) as client:
        for path in ("/healthz", "/readyz", "/metrics", "/schema/openapi.json"):
            assert (await client.get(path)).status_code == 200, path
        schema = (await client.get("/schema/openapi.json")).json()
        assert schema["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
    async with edge(api_keys_file=str(keys_file), protect_ops=True) as client:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 401, path
            assert (await client.get(path, headers={"x-api-key": READER})).status_code == 403
            ok = await client.get(path, headers={"x-api-key": OPERATOR})
            assert ok.status_code == 200, path


async def test_without_a_keys_file_the_node_is_open_and_says_so(
    edge: ClientFactory, logged: _Records
) -> None:
    async with edge() as client:
        assert (await client.get(URL)).status_code == 200
    assert any("no API keys configured" in r.getMessage() for r in logged.records)


async def test_keys_never_reach_the_logs(
    edge: ClientFactory, keys_file: Path, logged: _Records
) -> None:
    settings = {
        "api_keys_file": str(keys_file),
        "access_log": True,
        "admin_key": "admin-secret-4242",
        "user_hash_key": "user-hash-secret-0123456789",
    }
    async with edge(**settings) as client:
        await client.get(URL, headers={"x-api-key": READER})
        await client.get(URL, headers={"x-api-key": "leaked-guess-123"})
        body = {"schema_version": 1, "prompt": "sunny afternoon reggae", "user": "listener-77"}
        personal = await client.post("/v1/playlists", json=body, headers={"x-api-key": READER})
        assert personal.status_code == 200
        await client.post(
            "/admin/purge",
            json={"tags": ["nothing"]},
            headers={"authorization": "Bearer admin-secret-4242"},
        )
        await client.post(
            "/admin/purge", json={"tags": ["x"]}, headers={"authorization": "Bearer wrong-guess"}
        )
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in logged.records)
    assert "purged" in text  # the admin call was logged
    for secret in ("admin-secret-4242", "wrong-guess", "user-hash-secret", "listener-77"):
        assert secret not in text, secret
    assert '"route": "/v1/playlists"' in text or "'route': '/v1/playlists'" in text  # logged
    assert READER not in text
    assert "leaked-guess-123" not in text
    assert "sunny afternoon reggae" not in text  # nor the prompt of a GET
