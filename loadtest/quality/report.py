"""`bench quality`'s table, report.md and plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from loadtest.quality.metrics import DEPTH
from models.catalog import PROFILE_FEATURES

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt


def _rows(results: dict[str, Any]) -> list[list[str]]:
    n = results["n"]
    rows = [
        [
            *("method", f"recall@{n}", "R-prec", f"NDCG@{n}", "feat dist", "÷ random's"),
            *("repeats", "empty", "p50 ms"),
        ]
    ]
    for name, m in results["methods"].items():
        rows.append(
            [
                name,
                f"{m['recall']:.4f}",
                f"{m['r_precision']:.4f}",
                f"{m['ndcg']:.4f}",
                f"{m['feature_distance']:.3f}",
                f"{m['feature_ratio']:.2f}",
                f"{m['repeats']:.1%}",
                f"{m['empty']:.1%}",
                f"{m['p50_ms']:.1f}",
            ]
        )
    return rows


def _ratios(results: dict[str, Any]) -> list[str]:
    methods, n, lines = results["methods"], results["n"], []
    for baseline in ("naive", "title-knn", "content"):
        if "model" in methods and baseline in methods and methods[baseline]["recall"] > 0:
            ratio = methods["model"]["recall"] / methods[baseline]["recall"]
            lines.append(f"model ÷ {baseline} recall@{n}: {ratio:.2f}")
    if "model" in methods:
        lines.append(f"model feature distance ÷ random's: {methods['model']['feature_ratio']:.2f}")
    return lines


def _heading(results: dict[str, Any]) -> str:
    return (
        f"{results['judged']} {results['split']} playlists (sample {results['sample']}, seed "
        f"{results['seed']}; {results['skipped_no_catalog_tracks']} without catalog tracks "
        f"skipped), artifacts {results['version']} ({results['tracks']} tracks from "
        f"{results['source']}), model {results['model']}; "
        f"{results['unparsable']} titles refused by the parser (empty model answers), "
        f"{results['unslotted']:.0%} parse to no slot"
    )


def print_table(results: dict[str, Any]) -> None:
    """The metrics table and the headline ratios on stdout."""
    print(_heading(results))
    rows = _rows(results)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(
                cell.rjust(w) if i else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    for line in _ratios(results):
        print(line)


def write(results: dict[str, Any], out: Path) -> None:
    (out / "results.json").write_text(json.dumps(_plain(results), indent=2) + "\n")
    _plot_curves(results, out / "recall_at_k.png")
    _plot_kinds(results, out / "recall_by_kind.png")
    rows = _rows(results)
    table = [
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
        *("| " + " | ".join(row) + " |" for row in rows[1:]),
    ]
    n, kinds = results["n"], results["kinds"]
    by_kind = [
        "| method | " + " | ".join(f"{k} ({c})" for k, c in kinds.items()) + " |",
        "|" + "---|" * (len(kinds) + 1),
        *(
            f"| {name} | " + " | ".join(f"{m['recall_by_kind'][k]:.4f}" for k in kinds) + " |"
            for name, m in results["methods"].items()
        ),
    ]
    lines = [
        "# Relevance on listener playlists",
        "",
        _heading(results) + ".",
        "",
        *table,
        "",
        *(f"- {line}" for line in _ratios(results)),
        f"- Every method was asked once for {DEPTH} tracks; R-precision cuts R at {DEPTH} "
        f"when a playlist has more catalog tracks. Feature distance: L1 between the mean "
        f"{', '.join(PROFILE_FEATURES)} of the first {n} tracks and of the playlist's.",
        "",
        f"## recall@{n} by title kind (playlists)",
        "",
        *by_kind,
        "",
        "![recall@k](recall_at_k.png)",
        "",
        "![recall by kind](recall_by_kind.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))


def _plain(value: Any) -> Any:
    """JSON-ready: floats to 6 significant digits, NaN to null."""
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.6g}")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _plot_curves(results: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ks = np.arange(1, DEPTH + 1)
    for name, m in results["methods"].items():
        ax.plot(ks, m["recall_at_k"], label=name)
    ax.axvline(results["n"], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("k (tracks asked for)")
    ax.set_ylabel("recall@k")
    ax.set_title(f"recall@k on {results['judged']} {results['split']} playlists")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_kinds(results: dict[str, Any], path: Path) -> None:
    kinds = list(results["kinds"])
    methods = results["methods"]
    width = 0.8 / max(len(methods), 1)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (name, m) in enumerate(methods.items()):
        x = np.arange(len(kinds)) + (i - (len(methods) - 1) / 2) * width
        ax.bar(x, [m["recall_by_kind"][k] for k in kinds], width, label=name)
    ax.set_xticks(np.arange(len(kinds)), [f"{k}\n({results['kinds'][k]})" for k in kinds])
    ax.set_ylabel(f"recall@{results['n']}")
    ax.set_title("recall by what the title names (playlists per kind)")
    ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(results: dict[str, Any], out: Path) -> None:
    """The table, then where the files went."""
    print_table(results)
    print(f"wrote results.json, report.md, recall_at_k.png and recall_by_kind.png to {out}")
