"""`python -m loadtest.bench encoder`: encoder throughput and CPU per prompt, batch by batch.

Each artifact folder's encoder encodes the same unique prompts in arrival order (batches
cut as they come, as the node's micro-batcher cuts them) at several batch sizes and thread
counts, and once length-sorted in batches of 32 (`PromptEncoder.encode`, the figure `bench
http` divides by). Folders are measured alternately, round by round, so machine noise hits
them alike; medians are printed. Give two folders to compare two encoder graphs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from statistics import median

from loadtest.prompts import unique_prompts
from models.encoder import PromptEncoder

BATCHES = (1, 8, 32)


def _arrival(encoder: PromptEncoder, prompts: Sequence[str], batch: int) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    for at in range(0, len(prompts), batch):
        encoder.run(*encoder.tokenize(prompts[at : at + batch]))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(prompts) / wall, cpu / len(prompts) * 1000


def _sorted(encoder: PromptEncoder, prompts: Sequence[str]) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    encoder.encode(prompts)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(prompts) / wall, cpu / len(prompts) * 1000


def run(folders: Sequence[Path], *, prompts: int, rounds: int, threads: Sequence[int]) -> None:
    texts = unique_prompts(prompts, seed=99)
    encoders = {
        (folder, t): PromptEncoder(
            folder / "encoder.onnx", folder / "tokenizer.json", intra_op_threads=t
        )
        for folder in folders
        for t in threads
    }
    for encoder in encoders.values():
        encoder.encode(texts[:64])  # onnxruntime's first-run allocations
    runs: dict[tuple[Path, int, str], list[tuple[float, float]]] = {}
    for round_no in range(rounds):
        print(f"  round {round_no + 1}/{rounds}", flush=True)
        for (folder, t), encoder in encoders.items():
            for batch in BATCHES:
                runs.setdefault((folder, t, f"arrival, batch {batch}"), []).append(
                    _arrival(encoder, texts, batch)
                )
            runs.setdefault((folder, t, "length-sorted, batch 32"), []).append(
                _sorted(encoder, texts)
            )
    print(f"\n{prompts} unique prompts, medians of {rounds} rounds")
    print(f"{'encoder':<44} {'threads':>7} {'batches':<24} {'prompts/s':>9} {'CPU ms/prompt':>13}")
    for (folder, t, how), values in runs.items():
        rate = median(v[0] for v in values)
        cpu = median(v[1] for v in values)
        print(f"{folder!s:<44} {t:>7} {how:<24} {rate:>9.0f} {cpu:>13.2f}")
