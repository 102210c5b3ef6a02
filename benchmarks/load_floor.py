"""Warm load of a bundled model against the same objects built with the libraries alone.

Usage: python -m benchmarks.load_floor [--models gemma-3-270m smollm2-135m] [--repeats 3]

Both variants run in fresh interpreters, alternating, cache warm, imports included:

- ``hublens``: ``import hublens; hublens.load_model(name)``;
- ``libraries``: what any TransformerLens user must run for the same model from the same cache
  folder, each step the fastest way we know, with no hublens code: import torch, transformers
  and TransformerLens; ``AutoModelForCausalLM.from_pretrained`` of the safetensors; the
  tokenizer from its tokenizer.json in one Rust parse (``tokenizer_file=``, with
  ``add_bos_token=True`` for a BOS model, else TransformerLens re-reads it); then
  ``TransformerBridge.boot_transformers`` around both. Its steps are timed one by one.

The difference is what hublens adds (verification stamps, BOS policy, the HubModel wrapper);
the libraries' time is a floor no hublens change can go below.
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

from benchmarks.fresh import load_average, run_python

HUBLENS = """
import json, time
t = time.perf_counter()
import hublens
t1 = time.perf_counter()
hublens.load_model({name!r})
t2 = time.perf_counter()
print(json.dumps({{"imports": t1 - t, "load": t2 - t1, "total": t2 - t}}))
"""

LIBRARIES = """
import json, time
t0 = time.perf_counter()
import torch
import transformer_lens
from transformer_lens.model_bridge import TransformerBridge
from transformers import AutoModelForCausalLM
from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
t1 = time.perf_counter()
hf = AutoModelForCausalLM.from_pretrained(
    {entry!r}, dtype=torch.float32, attn_implementation="eager", local_files_only=True,
    use_safetensors=True,
)
hf.eval()
t2 = time.perf_counter()
config = json.load(open({entry!r} + "/tokenizer_config.json"))
cls = tokenizer_class_from_name(config["tokenizer_class"])
kwargs = {{k: v for k, v in config.items() if k not in ("tokenizer_class", "backend")}}
kwargs.update({bos_kwargs!r})  # a BOS model: else TransformerLens re-reads the tokenizer
tok = cls(tokenizer_file={entry!r} + "/tokenizer.json", name_or_path={entry!r}, **kwargs)
t3 = time.perf_counter()
TransformerBridge.boot_transformers({tl_name!r}, hf_model=hf, tokenizer=tok, device="cpu",
                                    dtype=torch.float32)
t4 = time.perf_counter()
print(json.dumps({{"imports": t1 - t0, "weights": t2 - t1, "tokenizer": t3 - t2,
                  "bridge": t4 - t3, "total": t4 - t0}}))
"""


def measure(name: str, repeats: int) -> dict[str, Any]:
    """Alternating fresh-process runs of both variants for one bundled model."""
    import hublens
    from hublens.bundled import BUNDLED
    from hublens.cache import cache_root

    hublens.load_model(name)  # the cache entry exists and its stamps are recorded
    spec = BUNDLED[name]
    entry = str(cache_root() / f"{name}-{spec.package_version()}-fp32")
    codes = {
        "hublens": HUBLENS.format(name=name),
        "libraries": LIBRARIES.format(
            entry=entry,
            tl_name=spec.tl_name,
            bos_kwargs={"add_bos_token": True} if spec.prepend_bos else {},
        ),
    }
    runs: dict[str, list[dict[str, float]]] = {"hublens": [], "libraries": []}
    for _ in range(repeats):
        for variant, code in codes.items():
            runs[variant].append(run_python(code))
    return {"model": name, "runs": runs}


def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _runs(runs: list[dict[str, float]]) -> str:
    return ", ".join(f"{run['total']:.2f}" for run in runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["gemma-3-270m", "smollm2-135m"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    start_load = load_average()
    rows = [measure(name, args.repeats) for name in args.models]
    end_load = load_average()
    print(f"{os.cpu_count()} cores, load average {start_load} at start, {end_load} at end\n")
    print(
        "| model | hublens median s | libraries median s | hublens / libraries "
        "| hublens: imports / load | libraries: imports / weights / tokenizer / bridge "
        "(median s) | runs hublens "
        "| runs libraries |"
    )
    print("|---|---:|---:|---:|---|---|---|---|")
    for row in rows:
        hub, lib = row["runs"]["hublens"], row["runs"]["libraries"]
        steps = " / ".join(
            f"{_median(lib, k):.2f}" for k in ("imports", "weights", "tokenizer", "bridge")
        )
        own = " / ".join(f"{_median(hub, k):.2f}" for k in ("imports", "load"))
        print(
            f"| {row['model']} | {_median(hub, 'total'):.2f} | {_median(lib, 'total'):.2f} "
            f"| {_median(hub, 'total') / _median(lib, 'total'):.2f} | {own} | {steps} "
            f"| {_runs(hub)} | {_runs(lib)} |"
        )


if __name__ == "__main__":
    main()
