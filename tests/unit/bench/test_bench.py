"""Smoke test of the benchmark suite on a tiny random model (timings are never asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from hublens.bench.memory import memory_data
from hublens.bench.report import to_markdown
from hublens.bench.suite import SECTIONS, Settings, run_suite
from hublens.bench.timing import PeakMemory, measure, ratio
from hublens.cli import main
from hublens.hooks import ActivationStore, capture_hooks


def make_hooks(model):
    """A user's hook factory, for --hooks."""
    return capture_hooks(model, ActivationStore(), layers=[0, 1])


@pytest.fixture(scope="module")
def results():
    settings = Settings(warmup=0, repeats=1, scan_items=4, scan_repeats=1,
                        memory_sizes=(20,), memory_batch=16, new_tokens=3,
                        user_hooks="tests.unit.bench.test_bench:make_hooks")
    return run_suite(["tiny-llama"], settings, command="pytest", log=lambda m: None)


def test_every_section_runs_and_independent_computations_agree(results):
    section = results["models"][0]
    assert set(SECTIONS) <= set(section)
    fw = section["forward"]
    assert fw["agreement"]["bridge vs transformers logits"] < 1e-4
    assert fw["agreement"]["capture vs run_with_cache (last layer)"] == 0.0
    assert "bridge + your hooks" in fw["variants"]
    # hublens's lens equals TransformerLens's logit_lens; the scan equals plain transformers
    assert section["lens"]["agreement"]["hublens vs TL target log-probs"] < 1e-4
    assert all(v < 1e-5 for v in section["scan"]["agreement_max_abs"].values())
    (memory,) = section["memory"]["sizes"]  # one size here (a fresh process each)
    assert memory["n_items"] == 20 and memory["n_texts"] == 40 and memory["scan_peak_mb"] >= 0
    assert len(section["targets"]) == 7
    measured = {t["name"] for t in section["targets"] if t["value"] is not None}
    assert "hublens capture taps / bare bridge forward" in measured
    assert "TL logit_lens time / hublens lens readout" in measured
    assert "steered / unsteered greedy generation" in measured
    json.dumps(results)  # the results file is plain JSON


def test_markdown_has_the_tables_and_the_machine(results):
    text = to_markdown(results)
    for heading in ("| variant |", "| readout |", "| implementation |", "| items |",
                    "| generation |", "| target |"):
        assert heading in text
    assert "cores" in text and "torch" in text


def test_memory_data_has_distinct_texts_and_ids():
    data = memory_data(500)  # beyond the 328 built-in words: synthesised pairs
    assert len(data) == 500 and len(set(data.ids)) == 500
    assert len(set(data.column("en"))) == 500 and len(set(data.column("zh"))) == 500


def test_peak_memory_sees_an_allocation():
    with PeakMemory() as memory:
        block = torch.ones(25_000_000)  # 100 MB
        block.add_(1)
    if memory.peak_bytes is None:
        pytest.skip("no /proc high-water mark on this platform")
    assert 80e6 < memory.peak_bytes < 400e6


def test_measure_interleaves_and_ratio_is_per_round():
    calls = []
    timings = measure({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                      warmup=1, repeats=4, memory=False)
    assert calls[:2] == ["a", "b"] and calls[2:4] == ["a", "b"] and calls[4:6] == ["b", "a"]
    assert len(timings["a"].seconds) == 4 and ratio(timings, "a", "a") == 1.0


def test_cli_bad_hooks_and_sections_name_the_option(capsys):
    assert main(["bench", "--model", "tiny-llama", "--hooks", "nocolon"]) == 2
    assert "MODULE:FUNCTION" in capsys.readouterr().err
    assert main(["bench", "--model", "tiny-llama", "--sections", "forward,bogus"]) == 2
    assert "--sections" in capsys.readouterr().err
