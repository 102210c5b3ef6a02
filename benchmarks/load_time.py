"""Time `hublens.load_model(name)` in fresh processes (imports included), cache warm.

Usage: python -m benchmarks.load_time [--models gemma-3-270m smollm2-135m] [--repeats 3]
Writes benchmarks/results/load_time.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

from benchmarks.fresh import run_python

CHILD = """
import time
t = time.perf_counter()
import hublens
hublens.load_model({name!r})
print(time.perf_counter() - t)
"""


def time_load(name: str) -> float:
    """Seconds for one load in a new interpreter."""
    return float(run_python(CHILD.format(name=name)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for name in args.models:
        time_load(name)  # make sure the cache entry exists (first load dequantises)
        times = [time_load(name) for _ in range(args.repeats)]
        rows.append({"model": name, "median_s": statistics.median(times), "runs_s": times})
    result = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{__import__('os').cpu_count()} cores, Python {platform.python_version()}",
        "rows": rows,
    }
    out = Path(__file__).parent / "results" / "load_time.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"machine: {result['machine']}\n")
    print("| model | second load, new process (median s) | runs (s) |")
    print("|---|---|---|")
    for row in rows:
        runs = ", ".join(f"{t:.2f}" for t in row["runs_s"])
        print(f"| {row['model']} | {row['median_s']:.2f} | {runs} |")


if __name__ == "__main__":
    main()
