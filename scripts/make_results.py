"""Run the semantic hub scan on every built-in data set and both bundled models; write
docs/results.md (markdown tables of selected layers) and reports under results/<model>/<data>/.

Usage: python scripts/make_results.py [--models gemma-3-270m smollm2-135m] [--max-items N]
"""

from __future__ import annotations

import argparse
import math
import platform
import time
from pathlib import Path

import hublens
from hublens.data import ParallelData
from hublens.data.builtin import BUILTIN_DATASETS

ROOT = Path(__file__).resolve().parent.parent


def fmt(row) -> str:
    if math.isnan(row.ci_low):
        return f"{row.mean:.4f}"
    return f"{row.mean:.4f} [{row.ci_low:.4f}, {row.ci_high:.4f}]"


def table(result, n_layers: int) -> str:
    picks = sorted({0, n_layers // 4, n_layers // 2, (2 * n_layers) // 3, n_layers - 2, n_layers - 1})
    lines = []
    keys = list(dict.fromkeys((r.analysis, r.metric, r.group) for r in result.rows))
    lines.append("| analysis | metric | group | n | " + " | ".join(f"L{l}" for l in picks) + " |")
    lines.append("|---|---|---|---|" + "---|" * len(picks))
    for analysis, metric, group in keys:
        rows = {r.layer: r for r in result.rows if (r.analysis, r.metric, r.group) == (analysis, metric, group)}
        n = next(iter(rows.values())).n
        cells = [fmt(rows[l]) if l in rows else "" for l in picks]
        lines.append(f"| {analysis} | {metric} | {group} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    parser.add_argument("--data", nargs="+", default=list(BUILTIN_DATASETS))
    parser.add_argument("--max-items", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    args = parser.parse_args()
    sections = []
    for model_name in args.models:
        model = hublens.load_model(model_name)
        for data_name in args.data:
            data = ParallelData.load(data_name)
            data = data.select(range(min(args.max_items, len(data))))
            started = time.perf_counter()
            result = hublens.semantic_hub_scan(model, data, batch_size=8, progress=False)
            seconds = time.perf_counter() - started
            result.save(ROOT / "results" / model_name / data_name)
            options = "; ".join(f"{k}: {v}" for k, v in result.options.items())
            sections.append(
                f"### {model_name} · {data_name} ({len(data)} items, {seconds:.0f} s)\n\n"
                f"Command: `hublens scan --model {model_name} --data {data_name} "
                f"--max-items {args.max_items} --out results/{model_name}/{data_name}`\n\n"
                f"Options: {options}\n\n{table(result, model.n_layers)}\n"
            )
            print(sections[-1], flush=True)
        del model
    header = (
        "# Measured results\n\n"
        "Produced by `python scripts/make_results.py` (all built-in data sets, both bundled "
        f"models, first {args.max_items} items of each). Machine: {platform.machine()}, "
        "2 CPU cores, no GPU, torch 2.13.0+cpu, transformers 5.23.0, transformer-lens 4.3.0. "
        "Cells are the mean with its 95% CI in brackets at selected layers (L = index of the "
        "block whose resid_post is read). Full per-layer tables: results/<model>/<data>/result.csv "
        "(not committed; rerun the command).\n\n"
    )
    Path(args.out).write_text(header + "\n".join(sections), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
