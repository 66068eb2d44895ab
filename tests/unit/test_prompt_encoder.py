"""PromptEncoder's tokenizing, batching and error mapping on the real int8 and fp32 graphs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models.encoder import PromptEncoder
from models.encoder_build import EncoderBuild
from models.errors import EncoderError

pytestmark = pytest.mark.slow

PROMPTS = [
    "gym",
    "80s synthwave for night driving",
    "sad songs",
    "rainy sunday morning jazz, no vocals, something warm for reading by the window",
    "chill",
    "no vocals, deep focus",
    "upbeat pop for a summer road trip",
]


@pytest.fixture(scope="module")
def encoder(encoder_build: EncoderBuild) -> PromptEncoder:
    """The shipped int8 encoder with default settings."""
    return PromptEncoder(encoder_build.onnx_path, encoder_build.tokenizer_path)


def test_tokenize_does_not_pad_to_fixed_length(encoder: PromptEncoder) -> None:
    """A three-word prompt yields a handful of int64 tokens, not the tokenizer.json's 128."""
    ids, mask = encoder.tokenize(["rainy sunday jazz"])
    assert ids.dtype == mask.dtype == np.int64
    assert ids.shape == mask.shape
    assert ids.shape[1] < 10
    assert mask.all()


def test_batch_is_padded_to_its_longest_member(encoder: PromptEncoder) -> None:
    """Shorter texts in a batch are padded with id 0 / mask 0 up to the longest text only."""
    ids, mask = encoder.tokenize(["gym", "80s synthwave for night driving"])
    lengths = mask.sum(axis=1)
    assert ids.shape[1] == lengths.max() == lengths[1]
    assert lengths[0] < lengths[1]
    assert (ids[0, lengths[0] :] == 0).all()


def test_long_text_is_truncated_at_max_tokens(encoder_build: EncoderBuild) -> None:
    """A text past max_tokens keeps exactly max_tokens tokens, still ending in [SEP]."""
    short = PromptEncoder(encoder_build.onnx_path, encoder_build.tokenizer_path, max_tokens=16)
    ids, mask = short.tokenize(["jazz " * 100])
    assert ids.shape == (1, 16)
    assert mask.all()
    assert ids[0, -1] == 102  # [SEP] in the BERT uncased vocabulary
    assert short.encode(["jazz " * 100]).shape == (1, short.dim)


def test_batched_encode_matches_one_by_one_in_order(encoder_build: EncoderBuild) -> None:
    """Chunked, length-sorted encoding returns each text's own vector, in input order.

    Uses the fp32 graph: int8 rows shift slightly with their batch neighbours by design.
    """
    assert encoder_build.fp32_path is not None
    fp32 = PromptEncoder(encoder_build.fp32_path, encoder_build.tokenizer_path, batch_size=3)
    batched = fp32.encode(PROMPTS)
    single = np.concatenate([fp32.encode([text]) for text in PROMPTS])
    assert np.sum(batched * single, axis=1).min() > 0.9999


def test_padding_does_not_change_a_row(encoder: PromptEncoder) -> None:
    """The graph drops padding before its first layer, so extra pad columns change nothing,
    even in int8, whose activation scale would otherwise see the pad tokens."""
    ids, mask = encoder.tokenize(["rainy sunday jazz"])
    pad = np.zeros((1, 40), dtype=np.int64)
    alone = encoder.run(ids, mask)
    padded = encoder.run(np.hstack([ids, pad]), np.hstack([mask, pad]))
    np.testing.assert_allclose(padded, alone, atol=1e-6)


def test_rows_are_unit_norm_float32(encoder: PromptEncoder) -> None:
    """encode returns float32 rows of width 384 and L2 norm 1."""
    vectors = encoder.encode(PROMPTS)
    assert vectors.shape == (len(PROMPTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_gives_empty_matrix(encoder: PromptEncoder) -> None:
    """No texts give a (0, 384) float32 array without running the graph."""
    vectors = encoder.encode([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32
    none = np.zeros((0, 5), dtype=np.int64)
    assert encoder.run(none, none).shape == (0, 384)  # the graph itself takes a batch of 0


def test_concurrent_encodes_agree(encoder: PromptEncoder) -> None:
    """Encoding from several threads at once gives the same vectors as a single thread."""
    expected = encoder.encode(PROMPTS)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: encoder.encode(PROMPTS), range(8)))
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_corrupt_onnx_file_raises_encoder_error(
    encoder_build: EncoderBuild, tmp_path: Path
) -> None:
    """A graph file that is not ONNX fails with EncoderError chained to the runtime's error."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"definitely not a protobuf")
    with pytest.raises(EncoderError) as info:
        PromptEncoder(bad, encoder_build.tokenizer_path)
    assert info.value.__cause__ is not None


def test_bad_run_input_raises_encoder_error(encoder: PromptEncoder) -> None:
    """Inputs of the wrong dtype fail with EncoderError, not onnxruntime's own exception."""
    ids = np.ones((1, 3), dtype=np.int32)
    with pytest.raises(EncoderError):
        encoder.run(ids, ids)
