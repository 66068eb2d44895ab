"""Write all-MiniLM-L6-v2 as an ONNX graph straight from its safetensors weights.

The graph is built with onnx's own helpers, so no PyTorch is needed. It takes
`input_ids` and `attention_mask` (int64, [batch, seq], both axes dynamic) and returns
`embedding` (float32, [batch, 384]): the BERT encoder, mean pooling over the mask and L2
normalisation, i.e. the whole sentence-transformers pipeline. Padding is dropped inside
the graph, so a batch costs its real tokens, and a row never depends on how far it was
padded.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

OPSET = 17
# A large finite negative instead of -inf: a fully masked row then stays finite.
_MASK_NEG = -1e9


class _Graph:
    """Accumulates nodes and initializers, handing out unique tensor names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str = "", **attrs: Any) -> str:
        self._count += 1
        out = f"{name or op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    def linear(self, x: str, weights: dict[str, np.ndarray], prefix: str) -> str:
        # torch Linear stores [out, in]; MatMul wants the weight as B = [in, out], and
        # quantize_dynamic only quantizes MatMuls whose B is an initializer.
        w = self.const(f"{prefix}.weight", np.ascontiguousarray(weights[f"{prefix}.weight"].T))
        b = self.const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return self.op("Add", [self.op("MatMul", [x, w]), b], name=prefix)

    def layer_norm(self, x: str, weights: dict[str, np.ndarray], prefix: str, eps: float) -> str:
        scale = self.const(f"{prefix}.weight", weights[f"{prefix}.weight"])
        bias = self.const(f"{prefix}.bias", weights[f"{prefix}.bias"])
        return self.op("LayerNormalization", [x, scale, bias], axis=-1, epsilon=eps)


def _f32(value: float) -> np.ndarray:
    return np.array(value, dtype=np.float32)


def _i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def build_model(weights: dict[str, np.ndarray], config: dict[str, Any]) -> onnx.ModelProto:
    """Return the encoder + pooling + normalisation graph for a BERT config and its weights."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])
    weights = dict(weights)  # fused query/key/value entries are added below
    g = _Graph()

    # Padding is removed before the first layer (as FasterTransformer's "effective
    # transformer" does; onnxruntime's packed-attention ops are CUDA-only): every per-token
    # step (embeddings, the dense layers that carry ~90% of the work at prompt lengths,
    # layer norms) runs on the T real tokens of the batch, [T, hidden], and only attention
    # works on the padded [batch, seq] layout. Prompts of mixed lengths then cost what their
    # tokens cost, not batch x longest.
    flat = g.const("flat", _i64(-1))
    flat_mask = g.op("Reshape", ["attention_mask", flat])
    seq_len = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const("one", _i64(1))], axis=0)
    # Flat positions (row * seq + column) of the real tokens, in order: [T].
    real = g.op("Squeeze", [g.op("NonZero", [flat_mask]), g.const("axis_0", _i64(0))])
    # For each padded position, its packed row, or T (an all-zero row) for padding.
    real_count = g.op("Shape", [real])
    cumsum = g.op("CumSum", [flat_mask, g.const("axis_0_scalar", np.array(0, np.int64))])
    rank = g.op("Sub", [cumsum, g.const("i_one", np.array(1, np.int64))])
    to_padded = g.op("Where", [g.op("Cast", [flat_mask], to=TensorProto.BOOL), rank, real_count])
    # [batch, seq, width] for each width, spelled out: -1 would be ambiguous in a batch of 0.
    padded_shape = {
        width: g.op(
            "Concat", [g.op("Shape", ["attention_mask"]), g.const(f"w{width}", _i64(width))], axis=0
        )
        for width in (hidden, 3 * hidden)
    }
    one_and_width = {
        width: g.const(f"zero_row_{width}", _i64(1, width)) for width in (hidden, 3 * hidden)
    }
    flat_rows = g.const("flat_rows", _i64(-1, hidden))

    def padded(t: str, width: int) -> str:
        """[T, width] packed rows -> [batch, seq, width], zeros at padding."""
        zeros = g.op("ConstantOfShape", [one_and_width[width]])
        rows = g.op("Gather", [g.op("Concat", [t, zeros], axis=0), to_padded], axis=0)
        return g.op("Reshape", [rows, padded_shape[width]])

    def packed(t: str) -> str:
        """[batch, seq, hidden] -> the [T, hidden] rows of real tokens."""
        return g.op("Gather", [g.op("Reshape", [t, flat_rows]), real], axis=0)

    # Embeddings. token_type_ids are always 0, so row 0 of the token-type table is
    # folded into the position table instead of being a graph input.
    positions = weights["embeddings.position_embeddings.weight"]
    positions = positions + weights["embeddings.token_type_embeddings.weight"][0]
    word = g.const("word_embeddings", weights["embeddings.word_embeddings.weight"])
    pos = g.const("position_embeddings", positions.astype(np.float32))
    ids = g.op("Gather", [g.op("Reshape", ["input_ids", flat]), real])
    pos_ids = g.op("Mod", [real, seq_len])  # the column: tokens are left-aligned
    x = g.op("Add", [g.op("Gather", [word, ids]), g.op("Gather", [pos, pos_ids])])
    x = g.layer_norm(x, weights, "embeddings.LayerNorm", eps)

    # Additive attention bias [batch, 1, 1, seq]: 0 where attended, _MASK_NEG on padding.
    mask = g.op("Cast", ["attention_mask"], to=TensorProto.FLOAT)
    one_f = g.const("f_one", _f32(1.0))
    masked = g.op("Sub", [one_f, mask])
    bias = g.op("Mul", [masked, g.const("mask_neg", _f32(_MASK_NEG))])
    bias = g.op("Unsqueeze", [bias, g.const("axes_1_2", _i64(1, 2))])

    split_heads = g.const("split_heads", _i64(0, 0, heads, head_dim))
    scale = g.const("attn_scale", _f32(1.0 / math.sqrt(head_dim)))
    half = g.const("f_half", _f32(0.5))
    inv_sqrt2 = g.const("inv_sqrt2", _f32(1.0 / math.sqrt(2.0)))
    qkv_split = g.const("qkv_split", _i64(hidden, hidden, hidden))

    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"

        def heads_of(t: str, perm: list[int]) -> str:
            return g.op("Transpose", [g.op("Reshape", [t, split_heads])], perm=perm)

        # Query, key and value in one product, so the int8 graph quantizes x once.
        a = f"{p}.attention.self"
        for part in ("weight", "bias"):
            weights[f"{a}.qkv.{part}"] = np.concatenate(
                [weights[f"{a}.{n}.{part}"] for n in ("query", "key", "value")]
            )
        qkv = padded(g.linear(x, weights, f"{a}.qkv"), 3 * hidden)
        q_, k_, v_ = (f"{a}.{n}" for n in ("q", "k", "v"))
        g.nodes.append(helper.make_node("Split", [qkv, qkv_split], [q_, k_, v_], axis=-1))
        q = heads_of(q_, [0, 2, 1, 3])
        k = heads_of(k_, [0, 2, 3, 1])
        v = heads_of(v_, [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Mul", [g.op("MatMul", [q, k]), scale]), bias])
        ctx = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
        ctx = packed(g.op("Transpose", [ctx], perm=[0, 2, 1, 3]))
        attn = g.linear(ctx, weights, f"{p}.attention.output.dense")
        x = g.layer_norm(g.op("Add", [attn, x]), weights, f"{p}.attention.output.LayerNorm", eps)

        # GELU, exact erf form as in BERT: 0.5 * h * (1 + erf(h / sqrt(2))).
        h = g.linear(x, weights, f"{p}.intermediate.dense")
        erf = g.op("Erf", [g.op("Mul", [h, inv_sqrt2])])
        h = g.op("Mul", [g.op("Mul", [h, half]), g.op("Add", [erf, one_f])])
        out = g.linear(h, weights, f"{p}.output.dense")
        x = g.layer_norm(g.op("Add", [out, x]), weights, f"{p}.output.LayerNorm", eps)

    # Mean pooling over real tokens, then L2 normalisation (as sentence-transformers does,
    # with the same clamps: token count >= 1e-9, norm >= 1e-12).
    seq_axis = g.const("axis_seq", _i64(1))
    summed = g.op("ReduceSum", [padded(x, hidden), seq_axis], keepdims=0)  # padding rows are zero
    count = g.op("ReduceSum", [mask, seq_axis], keepdims=1)
    count = g.op("Max", [count, g.const("min_count", _f32(1e-9))])
    mean = g.op("Div", [summed, count])
    sq = g.op("ReduceSum", [g.op("Mul", [mean, mean]), seq_axis], keepdims=1)
    norm = g.op("Max", [g.op("Sqrt", [sq]), g.const("min_norm", _f32(1e-12))])
    g.nodes.append(helper.make_node("Div", [mean, norm], ["embedding"], name="embedding"))

    int_in = [
        helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"])
        for n in ("input_ids", "attention_mask")
    ]
    output = helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", hidden])
    graph = helper.make_graph(g.nodes, "all-MiniLM-L6-v2", int_in, [output], g.inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="playlist-edge"
    )
    model.ir_version = 8  # the IR version that goes with opset 17
    onnx.checker.check_model(model, full_check=True)
    return model


def export_fp32(model_dir: Path, out_path: Path) -> None:
    """Build the fp32 graph from `model_dir` (safetensors + config.json), write it atomically."""
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    model = build_model(load_file(model_dir / "model.safetensors"), config)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # A unique sibling temp file, so readers never see a half-written graph.
    tmp = out_path.with_name(f".{out_path.name}.{uuid.uuid4().hex}.tmp")
    try:
        onnx.save_model(model, tmp)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
