"""Prompt encoders: the `Encoder` protocol, the ONNX runtime encoder and a deterministic fake.

Every encoder maps a batch of texts to L2-normalised float32 rows of width `dim`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import xxhash

from models.errors import EncoderError

DIM = 384


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns texts into unit vectors."""

    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Return a (len(texts), dim) float32 array of L2-normalised rows."""
        ...


class FakeEncoder:
    """Deterministic bag-of-words encoder for unit tests: shared words give similar vectors.

    Each word maps to a fixed pseudo-random direction seeded by its xxh3 hash; a text is the
    normalised sum of its words, so no model file is needed and results never change.
    """

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim

    def _word(self, word: str) -> np.ndarray:
        seed = xxhash.xxh3_64_intdigest(word.encode())
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = [w.strip(".,;:!?") for w in text.lower().split()] or [""]
            for word in words:
                out[row] += self._word(word)
            out[row] /= np.linalg.norm(out[row]) or 1.0
        return out


def _ort_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's error classes; they derive from Exception directly, with no common base."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    errors = [v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception)]
    return (*errors, ValueError, RuntimeError)


class PromptEncoder:
    """all-MiniLM-L6-v2 on onnxruntime: texts -> (n, 384) float32 unit rows.

    Work is split into `tokenize` (ids + mask) and `run` (the ONNX graph, which does the mean
    pooling and L2 normalisation itself); `encode` chains them over length-sorted batches.
    A text longer than `max_tokens` word pieces ([CLS] and [SEP] included) is truncated:
    only its start is embedded. Nothing is loaded at import time. `encode` may be called
    from several threads at once: the tokenizer and `InferenceSession.run` are thread-safe.

    With a dynamically quantized (int8) graph a row depends slightly on the other rows of
    its batch, since activations get one quantization scale per batch; `batch_size=1`
    makes every text's vector independent of its neighbours (fp32 graphs are unaffected).
    """

    dim: int = DIM

    def __init__(
        self,
        onnx_path: Path,
        tokenizer_path: Path,
        *,
        max_tokens: int = 128,
        intra_op_threads: int = 1,
        inter_op_threads: int = 1,
        batch_size: int = 32,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        if max_tokens < 2 or batch_size < 1:
            raise EncoderError(f"bad settings: max_tokens={max_tokens}, batch_size={batch_size}")
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            # The packaged tokenizer.json pads everything to 128; keep its pad token but pad a
            # batch only to its longest member, and truncate (keeping [SEP]) at max_tokens.
            pad = tokenizer.padding or {}
            tokenizer.enable_padding(
                pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"), length=None
            )
            tokenizer.enable_truncation(max_length=max_tokens)
            options = ort.SessionOptions()
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.intra_op_num_threads = intra_op_threads
            # Idle pool threads sleep instead of spinning: spinning threads would take the
            # cores that search, ranking and the event loop need between encoder batches.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.inter_op_num_threads = inter_op_threads
            self._session = ort.InferenceSession(
                str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # both libraries raise bare Exception subtypes
            raise EncoderError(
                f"cannot load encoder {onnx_path} / {tokenizer_path}: {exc}"
            ) from exc
        self._tokenizer = tokenizer

    def tokenize(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, int64 [len(texts), longest]; truncated at max_tokens.

        Padding goes only to the longest text of this call, never to a fixed length.
        """
        try:
            batch = self._tokenizer.encode_batch(list(texts))
        except Exception as exc:  # tokenizers raises bare Exception
            raise EncoderError(f"tokenization failed: {exc}") from exc
        ids = np.array([e.ids for e in batch], dtype=np.int64).reshape(len(batch), -1)
        mask = np.array([e.attention_mask for e in batch], dtype=np.int64).reshape(len(batch), -1)
        return ids, mask

    def run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run the graph on one tokenized batch; returns float32 [batch, dim] unit rows."""
        try:
            (out,) = self._session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
        except _ort_errors() as exc:
            raise EncoderError(f"encoder run failed: {exc}") from exc
        return np.asarray(out, dtype=np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed any number of texts, in input order, as a (len(texts), dim) float32 array."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids, mask = self.tokenize(texts)
        lengths = mask.sum(axis=1)
        # Sorting by length groups similar texts, so each batch carries little padding.
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = int(lengths[rows].max())
            out[rows] = self.run(ids[rows, :width], mask[rows, :width])
        return out
