"""Peak memory of a scan against the number of items, one fresh process per size.

Items are synthesised from the 328 built-in multilingual words (English, Chinese) as ordered
pairs of distinct words, ``"dog cat"`` / ``"狗猫"``, each with its own id and distinct texts (the
engine runs each distinct text once, so repeats would cost nothing and prove nothing); every
size uses pairs, so the texts have the same length distribution at every size.

The child process loads the model, builds the data, then measures the scan
alone: its peak resident set above the resident set at the scan's start (Linux high-water mark,
reset just before), plus the process's absolute peak during the scan. One small forward runs
first: the weights are memory-mapped safetensors, and the first forward pages them all in
(about 1 GB for Gemma-3-270M), which is loading, not the scan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from hublens.data import ParallelData

_CHILD = """
import json, sys, time, torch
torch.set_num_threads({threads})
from hublens.bench.memory import memory_data
from hublens.bench.models import load_pair
from hublens.bench.timing import PeakMemory
from hublens.registry import make_analysis
from hublens.scan import semantic_hub_scan
pair = load_pair({name!r}, reference=False)
data = memory_data({n_items})
warm = pair.model.tokenize(["dog cat", "狗猫"])
with torch.no_grad():  # fault in the weights (memory-mapped safetensors) before measuring
    pair.model(warm.ids, attention_mask=warm.attention_mask)
with PeakMemory() as memory:
    started = time.perf_counter()
    semantic_hub_scan(pair.model, data, analyses=[make_analysis("similarity", cues={{}})],
                      batch_size={batch_size}, progress=False, check=False)
    seconds = time.perf_counter() - started
print(json.dumps({{"n_items": {n_items}, "n_texts": 2 * len(data), "seconds": seconds,
                  "scan_peak_mb": memory.peak_bytes / 1e6,
                  "process_peak_mb": memory.peak_rss_bytes / 1e6}}))
"""


def memory_data(n_items: int) -> ParallelData:
    """``n_items`` English-Chinese items with distinct texts (see the module docstring).

    Item ``k`` pairs word ``i = k mod n`` with word ``(i + 1 + k div n) mod n`` of the ``n``
    built-in words, so every size draws on the same words and the same text lengths: a memory
    difference between sizes comes from the number of items, not from longer texts.
    """
    from hublens.data.builtin import load_builtin

    words = load_builtin("multilingual-words")
    en, zh = words.column("en"), words.column("zh")
    n = len(words)
    if n_items > n * (n - 1):
        raise ValueError(f"n_items={n_items}: at most {n * (n - 1)} distinct word pairs.")
    records: list[dict[str, Any]] = []
    seen_en: set[str] = set()
    seen_zh: set[str] = set()
    k = 0
    while len(records) < n_items and k < n * (n - 1):
        i = k % n
        j = (i + 1 + k // n) % n
        k += 1
        text_en, text_zh = f"{en[i]} {en[j]}", zh[i] + zh[j]
        if text_en in seen_en or text_zh in seen_zh:
            continue  # the engine would run a repeated text once: keep texts distinct
        seen_en.add(text_en)
        seen_zh.add(text_zh)
        records.append({"id": f"p{i}-{j}", "en": text_en, "zh": text_zh})
    if len(records) < n_items:
        raise ValueError(f"n_items={n_items}: only {len(records)} distinct word pairs exist.")
    return ParallelData.from_records(records, types=["en", "zh"], name=f"words-x{n_items}")


def scan_memory(
    name: str,
    n_items: int,
    *,
    batch_size: int = 32,
    threads: int = 1,
    timeout: float = 1800,
    checkout: str | None = None,
) -> dict[str, Any]:
    """Peak memory of one scan of ``n_items`` items in a fresh process.

    ``checkout``: a source tree whose ``hublens`` the child imports instead of the installed
    one (to measure another version side by side, ``benchmarks/memory_growth.py``).

    Returns:
        ``n_items``, ``n_texts``, ``seconds``, ``scan_peak_mb`` (above the scan's start) and
        ``process_peak_mb`` (absolute).
    """
    code = _CHILD.format(name=name, n_items=n_items, batch_size=batch_size, threads=threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    if checkout is not None:
        env["PYTHONPATH"] = checkout
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=checkout,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"memory child for {n_items} items failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
