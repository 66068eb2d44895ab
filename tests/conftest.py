"""Shared fixtures for every test directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.redis_server import RedisServer
from models import artifacts
from models.encoder_build import EncoderBuild, build_encoder

CATALOG_SIZE = 20_000


@pytest.fixture(scope="session")
def encoder_build(tmp_path_factory: pytest.TempPathFactory) -> EncoderBuild:
    """The real prompt encoder, built once per session: int8 graph, kept fp32 graph, tokenizer."""
    return build_encoder(tmp_path_factory.mktemp("encoder"), keep_fp32=True)


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly built artifact folder over a 20k-track synthetic catalog (real int8 encoder)."""
    out = tmp_path_factory.mktemp("artifacts") / "v"
    artifacts.build(f"synthetic:{CATALOG_SIZE}", out, progress=False)
    return out


@pytest.fixture(scope="session")
def loaded(artifact_dir: Path) -> artifacts.Artifacts:
    return artifacts.load(artifact_dir)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port for one test, killed by PID after it."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
