"""Warm load of a bundled model in new processes: this checkout against another one, side by side.

Usage: python -m benchmarks.load_time_compare --before /path/to/old/checkout [--repeats 3]
Each run is a fresh interpreter with only the checkout on PYTHONPATH (cache warm, imports
included); the runs alternate before/after so drift of a shared machine hits both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from benchmarks.fresh import load_average, run_python

CHILD = """
import time
t = time.perf_counter()
import hublens
hublens.load_model({name!r})
print(time.perf_counter() - t)
"""


def time_load(name: str, checkout: Path) -> float:
    """Seconds for one load in a new interpreter importing hublens from ``checkout``."""
    return float(run_python(CHILD.format(name=name), checkout=checkout))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {load_average()} at start\n")
    print(
        "| model | before median s | after median s | after / before | runs before | runs after |"
    )
    print("|---|---|---|---|---|---|")
    for name in args.models:
        time_load(name, args.after)  # the first load after a change records the cache stamps
        runs: dict[str, list[float]] = {"before": [], "after": []}
        for _ in range(args.repeats):
            runs["before"].append(time_load(name, args.before))
            runs["after"].append(time_load(name, args.after))
        b, a = statistics.median(runs["before"]), statistics.median(runs["after"])
        before = ", ".join(f"{t:.2f}" for t in runs["before"])
        after = ", ".join(f"{t:.2f}" for t in runs["after"])
        print(f"| {name} | {b:.2f} | {a:.2f} | {a / b:.2f} | {before} | {after} |")


if __name__ == "__main__":
    main()
