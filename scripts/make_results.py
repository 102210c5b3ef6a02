"""Scan every built-in data set on both bundled models; write docs/results.md's tables.

The generated block of docs/results.md gets markdown tables of selected layers; HTML reports
and full tables go under results/<model>/<data>/.

Usage: python scripts/make_results.py [--models gemma-3-270m smollm2-135m] [--data NAME ...]
       [--max-items N]

Each scan is exactly ``hublens scan --model M --data D --out results/M/D`` (the default
analyses of the data set, see hublens.analyses.defaults). The block is rewritten after every
scan, so an interrupted run keeps what it measured. Only the text between the markers
``<!-- scan-results:start`` and ``<!-- scan-results:end -->`` is replaced.
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
    """A cell: the mean and its 95% CI."""
    if math.isnan(row.ci_low):
        return f"{row.mean:.4f}"
    return f"{row.mean:.4f} [{row.ci_low:.4f}, {row.ci_high:.4f}]"


def table(result, n_layers: int) -> str:
    """A markdown table: one line per (analysis, metric, group), columns at selected layers."""
    picks = sorted(
        {0, n_layers // 4, n_layers // 2, (2 * n_layers) // 3, n_layers - 2, n_layers - 1}
    )
    lines = []
    keys = list(dict.fromkeys((r.analysis, r.metric, r.group) for r in result.rows))
    lines.append("| analysis | metric | group | n | " + " | ".join(f"L{k}" for k in picks) + " |")
    lines.append("|---|---|---|---|" + "---|" * len(picks))
    for key in keys:
        analysis, metric, group = key
        rows = {r.layer: r for r in result.rows if (r.analysis, r.metric, r.group) == key}
        n = next(iter(rows.values())).n
        cells = [fmt(rows[k]) if k in rows else "" for k in picks]
        lines.append(f"| {analysis} | {metric} | {group} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    """Run the scans and write the block after each one."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    parser.add_argument("--data", nargs="+", default=list(BUILTIN_DATASETS))
    parser.add_argument(
        "--max-items",
        type=int,
        default=None,
        help="scan a seeded sample (seed 0) of N items of each data set",
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    args = parser.parse_args()
    sections = []
    for model_name in args.models:
        model = hublens.load_model(model_name)
        for data_name in args.data:
            data = ParallelData.load(data_name)
            cap = ""
            if args.max_items is not None:
                data = data.subset(args.max_items, seed=0)
                cap = f" --max-items {args.max_items}"
            started = time.perf_counter()
            result = hublens.semantic_hub_scan(model, data, batch_size=8, progress=True)
            seconds = time.perf_counter() - started
            result.save(ROOT / "results" / model_name / data_name)
            sections.append(
                f"### {model_name} · {data_name} ({len(data)} items, {seconds:.0f} s)\n\n"
                f"Command: `hublens scan --model {model_name} --data {data_name}{cap} "
                f"--out results/{model_name}/{data_name}`\n\n"
                f"{options_text(result)}\n\n{table(result, model.n_layers)}\n"
            )
            print(sections[-1], flush=True)
            write_block(Path(args.out), header(args) + "\n".join(sections))
        del model
    print(f"wrote {args.out}")


def options_text(result) -> str:
    """One line per analysis: its main options (token policy, final norm, sizes, skips)."""
    keep = (
        "pairs",
        "centered",
        "group_by",
        "token_policy",
        "final_norm",
        "source",
        "target",
        "few_shot",
        "n_items",
        "n_queries",
        "skip_reasons",
        "languages",
        "types",
        "n_texts_per_type",
        "n_positions",
        "dropped",
        "roles",
        "gap_guessed",
    )
    lines = []
    for name, options in result.options.items():
        shown = ", ".join(f"{k}={options[k]}" for k in keep if k in options)
        lines.append(f"- `{name}`: {shown}")
    return "\n".join(lines)


def header(args) -> str:
    """The paragraph above the tables: command and machine."""
    return (
        "Produced by `python scripts/make_results.py` (every built-in data set, both bundled "
        f"models, the default analyses of each data set). Machine: {platform.machine()}, "
        "2 CPU cores (shared with other jobs while measuring, so the seconds are loose), no "
        "GPU, torch 2.13.0+cpu, transformers 5.23.0, transformer-lens 4.3.0. Cells: the mean "
        "with its 95% CI in brackets at selected layers (L = index of the block whose resid_post "
        "is read; at the last layer every lens analysis reads the model's own output, the final "
        "norm applied under every lens setting, and similarity reads what its options record as "
        "last_layer; docs/methods.md). Full per-layer tables and HTML reports: "
        "results/<model>/<data>/ (not committed; rerun the command).\n\n"
    )


def write_block(path: Path, body: str) -> None:
    """Replace the generated block of ``path`` (between the markers) with ``body``."""
    text = path.read_text(encoding="utf-8")
    start = text.index(START)
    start = text.index("\n", start) + 1
    end = text.index(END)
    path.write_text(text[:start] + body + "\n" + text[end:], encoding="utf-8")


START = "<!-- scan-results:start"
END = "<!-- scan-results:end -->"


if __name__ == "__main__":
    main()
