"""Shared fixtures for every test directory."""

from __future__ import annotations

import pytest

from models.encoder_build import EncoderBuild, build_encoder


@pytest.fixture(scope="session")
def encoder_build(tmp_path_factory: pytest.TempPathFactory) -> EncoderBuild:
    """The real prompt encoder, built once per session: int8 graph, kept fp32 graph, tokenizer."""
    return build_encoder(tmp_path_factory.mktemp("encoder"), keep_fp32=True)
