"""Scan memory growth of this checkout against another one, side by side.

Usage: python -m benchmarks.memory_growth --before /path/to/old/checkout
       [--models gemma-3-270m smollm2-135m] [--sizes 250 4000] [--repeats 1]

One fresh process per (model, size, checkout, repeat), the checkouts alternating, through
:func:`hublens.bench.memory.scan_memory` (similarity en-zh, every layer, batch 32, one torch
thread; each child imports hublens from its checkout). Prints a markdown table (the scan's
peak above its start at the first and last size, the growth between them, and the scan's
seconds at the last size) and writes benchmarks/results/memory_growth.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path
from typing import Any

from benchmarks.fresh import check_checkout, load_average
from hublens.bench.memory import scan_memory


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[250, 4000])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    start = load_average()
    checkouts = {"before": str(args.before.resolve()), "after": str(args.after.resolve())}
    for checkout in checkouts.values():
        check_checkout(checkout)
    runs: dict[str, dict[str, dict[int, list[dict[str, Any]]]]] = {}
    for name in args.models:
        runs[name] = {v: {n: [] for n in args.sizes} for v in checkouts}
        for _ in range(args.repeats):
            for n in args.sizes:
                for variant, checkout in checkouts.items():
                    result = scan_memory(name, n, checkout=checkout)
                    runs[name][variant][n].append(result)
                    print(f"[{name}] {variant} {n} items: {result}", flush=True)
    print(f"\n{os.cpu_count()} cores, load average {start} at start, {load_average()} at end\n")
    first, last = args.sizes[0], args.sizes[-1]
    print(
        f"| model | checkout | scan peak MB, {first} items | scan peak MB, {last} items "
        f"| growth | scan s, {last} items |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for name, by_variant in runs.items():
        for variant, by_size in by_variant.items():
            lo = statistics.median(r["scan_peak_mb"] for r in by_size[first])
            hi = statistics.median(r["scan_peak_mb"] for r in by_size[last])
            seconds = statistics.median(r["seconds"] for r in by_size[last])
            label = f"{variant}: {checkouts[variant]}"
            print(
                f"| {name} | {label} | {lo:.1f} | {hi:.1f} | {(hi - lo) / lo * 100:+.1f}% "
                f"| {seconds:.1f} |"
            )
    out = Path(__file__).parent / "results" / "memory_growth.json"
    out.parent.mkdir(exist_ok=True)
    record = {"load_start": start, "checkouts": checkouts, "runs": runs}
    out.write_text(json.dumps(record, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
