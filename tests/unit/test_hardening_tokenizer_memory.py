"""Tokenizing the same texts again does not grow the native heap (glibc's own counters).

A scan tokenizes every batch through :meth:`HubModel.encode_rows`. hublens used to empty the
tokenizer backend's BPE word cache after each call; measured with ``mallinfo2().uordblks``
(bytes the main heap has handed out and not got back), that grew the heap by about 5.6 MB per
8,000 texts on every pass, the same texts again included, so a long scan's memory grew with
its length. Left alone, the backend's cache (bounded at 10,000 words) fills on the first pass
and later passes hit it. The probe runs in a fresh interpreter so that nothing else of the test
session shares its heap.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import ctypes, gc, json
import hublens
from tests.conftest import build_tiny

FIELDS = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in FIELDS.split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
hf, _, tokenizer = build_tiny("llama")
model = hublens.load_model(hf, tokenizer)
texts = [f"w{i}x{i * 7 % 13} {i}q" for i in range(8000)]
growth = []
for _ in range(3):
    gc.collect()
    before = libc.mallinfo2().uordblks
    for start in range(0, len(texts), 32):
        model.encode_rows(texts[start : start + 32])
    gc.collect()
    growth.append(libc.mallinfo2().uordblks - before)
print(json.dumps({"growth": growth}))
"""


def _has_mallinfo2() -> bool:
    import ctypes

    return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "mallinfo2")


@pytest.mark.skipif(not _has_mallinfo2(), reason="glibc's mallinfo2 (glibc 2.33 or later)")
def test_a_second_and_third_pass_over_the_same_texts_allocate_almost_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    growth = json.loads(done.stdout.strip().splitlines()[-1])["growth"]
    # measured: 5.2 MB on the first pass (the cache fills), then 0.6 and 0.1 MB; with the
    # cache emptied after every call 6.0, 5.6 and 5.7 MB
    assert growth[2] < 1.5e6, growth


def test_encode_rows_leaves_the_users_tokenizer_as_it_was() -> None:
    import hublens
    from tests.conftest import build_tiny

    hf, _, tokenizer = build_tiny("llama")
    model = hublens.load_model(hf, tokenizer)
    serialised = tokenizer._tokenizer.to_str()
    rows = model.encode_rows(["the cat sleeps", "a dog runs"])
    assert tokenizer._tokenizer.to_str() == serialised
    for text, row in zip(["the cat sleeps", "a dog runs"], rows, strict=True):
        expected = tokenizer.encode(text, add_special_tokens=False)
        assert row[-len(expected) :] == expected
