"""The ONNX encoder against the PyTorch model, and the int8 graph against the fp32 one."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import models.encoder_build as encoder_build_module
from models.encoder import PromptEncoder
from models.encoder_build import EncoderBuild, build_encoder, check_parity, load_parity_prompts
from models.errors import ParityError

pytestmark = pytest.mark.slow

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference_vectors.json"
# fp32 ONNX vs PyTorch: the same maths in float32, so only rounding may differ.
REFERENCE_MIN_COSINE = 0.9999
# int8 vs fp32, each prompt encoded alone: the bar the build enforces by default.
INT8_MIN_COSINE = 0.98


def test_fp32_graph_matches_pytorch_reference(encoder_build: EncoderBuild) -> None:
    """The hand-built fp32 graph reproduces sentence-transformers' vectors for every prompt."""
    reference = json.loads(REFERENCE.read_text(encoding="utf-8"))
    expected = np.array(reference["vectors"], dtype=np.float32)
    assert encoder_build.fp32_path is not None
    encoder = PromptEncoder(encoder_build.fp32_path, encoder_build.tokenizer_path)
    got = encoder.encode(reference["prompts"])
    cosine = np.sum(got * expected, axis=1) / np.linalg.norm(expected, axis=1)
    print(f"fp32 vs pytorch: min cosine {cosine.min():.7f}")
    assert cosine.min() >= REFERENCE_MIN_COSINE, dict(
        zip(reference["prompts"], cosine, strict=True)
    )


def test_int8_graph_tracks_fp32_on_parity_prompts(encoder_build: EncoderBuild) -> None:
    """The int8 graph stays within INT8_MIN_COSINE of fp32 on all 100 parity prompts."""
    prompts = load_parity_prompts()
    assert len(prompts) == 100
    assert encoder_build.fp32_path is not None
    low, mean = check_parity(
        encoder_build.onnx_path,
        encoder_build.fp32_path,
        encoder_build.tokenizer_path,
        prompts,
        INT8_MIN_COSINE,
    )
    print(f"int8 vs fp32: min cosine {low:.4f}, mean {mean:.4f}")
    assert low >= INT8_MIN_COSINE
    assert (low, mean) == pytest.approx((encoder_build.parity_min, encoder_build.parity_mean))


def test_build_raises_parity_error_and_writes_nothing(
    encoder_build: EncoderBuild, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable parity bar makes build_encoder raise ParityError and leave out_dir empty."""
    fp32_path = encoder_build.fp32_path
    assert fp32_path is not None
    # Reuse the session's graphs instead of exporting and quantizing again.
    monkeypatch.setattr(
        encoder_build_module, "export_fp32", lambda _dir, out: shutil.copyfile(fp32_path, out)
    )
    monkeypatch.setattr(
        encoder_build_module,
        "quantize_int8",
        lambda _fp32, out: shutil.copyfile(encoder_build.onnx_path, out),
    )
    out_dir = tmp_path / "out"
    with pytest.raises(ParityError, match="min cosine"):
        build_encoder(out_dir, keep_fp32=True, min_cosine=1.0001)
    assert list(out_dir.iterdir()) == []
