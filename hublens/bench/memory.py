"""Peak memory of a scan against the number of items, one fresh process per size.

Items: the built-in multilingual word pairs (English, Chinese). Beyond its 328 items, items are
synthesised as ordered pairs of distinct words, ``"dog cat"`` / ``"狗猫"``, each with its own id
and distinct texts (the engine runs each distinct text once, so repeats would cost nothing and
prove nothing). The child process loads the model, builds the data, then measures the scan
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
from hublens.analyses.similarity import Similarity
from hublens.scan import semantic_hub_scan
pair = load_pair({name!r}, reference=False)
data = memory_data({n_items})
warm = pair.model.tokenize(["dog cat", "狗猫"])
with torch.no_grad():  # fault in the weights (memory-mapped safetensors) before measuring
    pair.model(warm.ids, attention_mask=warm.attention_mask)
with PeakMemory() as memory:
    started = time.perf_counter()
    semantic_hub_scan(pair.model, data, analyses=[Similarity(cues={{}})],
                      batch_size={batch_size}, progress=False)
    seconds = time.perf_counter() - started
print(json.dumps({{"n_items": {n_items}, "n_texts": 2 * len(data), "seconds": seconds,
                  "scan_peak_mb": memory.peak_bytes / 1e6,
                  "process_peak_mb": memory.peak_rss_bytes / 1e6}}))
"""


def memory_data(n_items: int) -> ParallelData:
    """``n_items`` English-Chinese items with distinct texts (see the module docstring)."""
    from hublens.data.builtin import load_builtin

    words = load_builtin("multilingual-words")
    en, zh = words.column("en"), words.column("zh")
    n = len(words)
    records: list[dict[str, Any]] = []
    for i in range(min(n_items, n)):
        records.append({"id": f"w{i}", "en": en[i], "zh": zh[i]})
    k = 0
    while len(records) < n_items:
        i, j = divmod(k, n - 1)
        j = j + 1 if j >= i else j  # ordered pairs of distinct words
        k += 1
        if i >= n:
            raise ValueError(f"n_items={n_items}: at most {n + n * (n - 1)} distinct items.")
        if en[i] == en[j] or zh[i] == zh[j]:
            continue
        records.append({"id": f"p{i}-{j}", "en": f"{en[i]} {en[j]}", "zh": zh[i] + zh[j]})
    return ParallelData.from_records(records, types=["en", "zh"], name=f"words-x{n_items}")


def scan_memory(
    name: str, n_items: int, *, batch_size: int = 32, threads: int = 1, timeout: float = 1800
) -> dict[str, Any]:
    """Peak memory of one scan of ``n_items`` items in a fresh process.

    Returns:
        ``n_items``, ``n_texts``, ``seconds``, ``scan_peak_mb`` (above the scan's start) and
        ``process_peak_mb`` (absolute).
    """
    code = _CHILD.format(name=name, n_items=n_items, batch_size=batch_size, threads=threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory child for {n_items} items failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
