"""Cost of plain and centred similarity as a ratio to one bare forward: two checkouts side by side.

Usage: python -m benchmarks.similarity_cost --before /path/to/old/checkout [--items 24]

Each checkout runs in a fresh interpreter (torch on one thread, CPU-time clock, variants
interleaved: :func:`hublens.bench.timing.measure`): the bare forward is plain transformers
(``from_pretrained`` of the bundled model's fp32 copy, logits included) over the texts
similarity reads (the first ``--items`` multilingual sentences, every type, default cues), in the
scan's batches; the variants are ``semantic_hub_scan`` with ``similarity`` and with
``similarity_centered`` (the default pairs). Before issue 10 the centred variant ran every
forward twice.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from benchmarks.fresh import load_average, run_python

CHILD = """
import json, torch
torch.set_num_threads(1)
from hublens.bench.models import load_pair
from hublens.bench.timing import measure, ratio
from hublens.data import ParallelData
from hublens.registry import make_analysis
from hublens.scan import _length_sorted_batches, semantic_hub_scan

pair = load_pair({model!r})
model, reference = pair.model, pair.reference
data = ParallelData.load("multilingual-sentences").select(range({items}))
texts = list(dict.fromkeys(q.text for q in make_analysis("similarity").queries(model, data)))
batches = [model.tokenize(b) for b in _length_sorted_batches(texts, 8)]

def bare():
    with torch.no_grad():
        for b in batches:
            reference(input_ids=b.ids, attention_mask=b.attention_mask)

def scan(name):
    return lambda: semantic_hub_scan(
        model, data, analyses=[name], batch_size=8, progress=False, check=False
    )

timings = measure({{"bare": bare, "similarity": scan("similarity"),
                   "similarity_centered": scan("similarity_centered")}},
                  warmup=1, repeats={repeats}, memory=False)
print(json.dumps({{
    "bare_cpu_s": timings["bare"].median_cpu_s,
    "similarity": ratio(timings, "similarity", "bare", clock="cpu"),
    "similarity_centered": ratio(timings, "similarity_centered", "bare", clock="cpu"),
    "n_texts": len(texts),
}}))
"""


def run(checkout: Path, model: str, items: int, repeats: int) -> dict:
    """The ratios measured by ``checkout``'s hublens in a new interpreter."""
    code = CHILD.format(model=model, items=items, repeats=repeats)
    result: dict = run_python(code, checkout=checkout, OMP_NUM_THREADS="1")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--model", default="gemma-3-270m")
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} cores, load average {load_average()} at start; "
        f"model {args.model}, "
        f"{args.items} items, 1 thread, CPU time, medians of {args.repeats} interleaved rounds\n"
    )
    results = {
        side: run(path, args.model, args.items, args.repeats)
        for side, path in (("before", args.before), ("after", args.after))
    }
    print("| variant | before (x bare forward) | after (x bare forward) |")
    print("|---|---|---|")
    for key in ("similarity", "similarity_centered"):
        print(f"| {key} | {results['before'][key]:.2f} | {results['after'][key]:.2f} |")
    print(
        f"\nbare forward ({results['after']['n_texts']} texts): "
        f"{results['before']['bare_cpu_s']:.2f} s CPU before, "
        f"{results['after']['bare_cpu_s']:.2f} s after"
    )


if __name__ == "__main__":
    main()
