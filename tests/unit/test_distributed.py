"""Data-parallel scans: shard statistics merge to the one-process result (gloo, 2 processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import hublens
from hublens import semantic_hub_scan
from hublens.analyses.similarity import _PairSums
from hublens.analyses.stats import MeanStat
from hublens.data import ParallelData
from hublens.distributed import (
    analysis_state,
    decode_state,
    encode_state,
    load_state,
    merge_states,
    shard_indices,
)
from hublens.hooks import attached_hooks
from hublens.scan import _query_lists, collect
from tests.conftest import build_tiny
from tests.unit.distributed_analyses import make_analyses, records

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder_model(tmp_path_factory):
    """A tiny Llama saved as a safetensors folder (workers load the same weights), loaded."""
    _, reference, tokenizer = build_tiny("llama", seed=5)
    folder = tmp_path_factory.mktemp("tiny-llama")
    reference.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder, hublens.load_model(folder)


def _data() -> ParallelData:
    return ParallelData.from_records(records(), name="dist")


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    keys = ["analysis", "layer", "metric", "group"]
    return table.sort_values(keys).reset_index(drop=True)


def test_meanstat_merge_matches_numpy_over_all_values():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(37, 4))
    shards = [values[:5], values[5:6], values[6:]]
    stats = []
    for shard in shards:
        stat = MeanStat()
        stat.add(torch.from_numpy(shard))
        stats.append(stat)
    merged = merge_states([{"s": s} for s in stats])["s"]
    assert merged.n == 37
    np.testing.assert_allclose(merged.mean.numpy(), values.mean(0), rtol=1e-12)
    np.testing.assert_allclose((merged.m2 / 36).numpy(), values.var(0, ddof=1), rtol=1e-12)


def test_state_round_trips_without_pickle():
    sums = _PairSums()
    sums.add(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    stat = MeanStat()
    stat.add(torch.randn(5, 2))
    state = {
        "_sums": {("en", "zh"): sums},
        "_stats": {"a": stat, "empty": MeanStat()},
        "_group_sum": {(("en", "zh"), "7"): torch.ones(2, 4)},
        "_type_count": {"en": 3},
    }
    back = decode_state(encode_state(state))
    assert back["_type_count"] == {"en": 3}
    assert torch.equal(back["_group_sum"][(("en", "zh"), "7")], torch.ones(2, 4))
    assert back["_sums"][("en", "zh")].n == 3
    assert torch.equal(back["_sums"][("en", "zh")].m_x, sums.m_x)
    assert torch.equal(back["_stats"]["a"].m2, stat.m2) and back["_stats"]["empty"].n == 0


def test_two_shards_merged_in_process_equal_one_pass(folder_model):
    """The merge API, driven by hand over two shards, reproduces the one-process scan."""
    _, model = folder_model
    data = _data()
    expected = semantic_hub_scan(model, data, analyses=make_analyses(), progress=False)
    shards = [data.select(shard_indices(len(data), r, 2)) for r in range(2)]
    per_rank = [make_analyses() for _ in shards]
    query_lists = [_query_lists(model, a, s) for a, s in zip(per_rank, shards, strict=True)]
    layers = list(range(model.n_layers))
    for p in range(2):
        for analyses, queries in zip(per_rank, query_lists, strict=True):
            active = [k for k, a in enumerate(analyses) if a.n_passes > p]
            collect(model, [analyses[k] for k in active], [queries[k] for k in active],
                    layers=layers, batch_size=4, progress=False)
        for k, analysis in enumerate(per_rank[0]):
            if analysis.n_passes <= p:
                continue
            final = p + 1 == analysis.n_passes
            merged = merge_states([analysis_state(r[k], final=final) for r in per_rank])
            for r in per_rank:
                load_state(r[k], merged)
                if not final:
                    r[k].next_pass()
    rows = [row for analysis in per_rank[1] for row in analysis.finalize(layers)]
    got = pd.DataFrame([r.__dict__ for r in rows])
    want = expected.table()
    assert len(got) == len(want)
    pd.testing.assert_frame_equal(_sorted(got), _sorted(want), check_exact=False, atol=1e-6,
                                  rtol=1e-5, check_dtype=False)
    assert attached_hooks(model) == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_torchrun_two_gloo_processes_equal_one_process(folder_model, tmp_path):
    folder, model = folder_model
    data = _data()
    data_path = data.to_jsonl(tmp_path / "data.jsonl")
    expected = semantic_hub_scan(model, data, analyses=make_analyses(), progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
        str(ROOT / "tests" / "unit" / "distributed_worker.py"),
        str(folder), str(data_path), str(tmp_path),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    want = _sorted(expected.table())
    for rank in range(2):
        got = pd.read_csv(tmp_path / f"rank{rank}.csv")
        got["group"] = got["group"].fillna("").astype(str)  # "" (no group) reads back as NaN
        got = _sorted(got)
        assert len(got) == len(want) > 0
        pd.testing.assert_frame_equal(got, want, check_exact=False, atol=1e-6, rtol=1e-5,
                                      check_dtype=False)
    assert '"world_size": 2' in (tmp_path / "rank0.json").read_text()
    assert '"n_items": 11' in (tmp_path / "rank1.json").read_text()
    import json

    for rank in range(2):  # options describe the whole data, not the rank's shard
        options = json.loads((tmp_path / f"options{rank}.json").read_text())
        assert options["translation_lens"]["n_queries"] == len(data)


def test_distributed_without_torchrun_says_how(folder_model, monkeypatch):
    _, model = folder_model
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        semantic_hub_scan(model, _data(), analyses=make_analyses(), progress=False,
                          distributed=True)
    assert attached_hooks(model) == []


def test_few_shot_prompts_are_refused_in_distributed_mode(folder_model):
    from hublens.analyses.lens_probes import TranslationLens

    _, model = folder_model
    with pytest.raises(ValueError, match="demonstrations from other items"):
        semantic_hub_scan(model, _data(), progress=False, distributed=True,
                          analyses=[TranslationLens(source="fr", target="zh", dominant="en")])
    assert attached_hooks(model) == []


def test_shard_indices_cover_items_once():
    shards = [shard_indices(11, r, 3) for r in range(3)]
    assert sorted(i for s in shards for i in s) == list(range(11))
    with pytest.raises(ValueError, match="rank"):
        shard_indices(5, 2, 2)


def test_multi_pass_analysis_without_summed_state_is_refused():
    class TwoPass:
        name = "two"
        n_passes = 2

    with pytest.raises(ValueError, match="summed_state"):
        analysis_state(TwoPass(), final=False)


def test_pair_sums_blocked_second_moment_equals_one_einsum():
    x = torch.nn.functional.normalize(torch.randn(3, 150, 5, dtype=torch.float64), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(3, 150, 5, dtype=torch.float64), dim=-1)
    sums = _PairSums()
    for start in range(0, 150, 7):  # crosses the 64-item block boundary twice
        sums.add(x[:, start : start + 7], y[:, start : start + 7])
    sums.flush()
    torch.testing.assert_close(sums.m_x, torch.einsum("lbd,lbe->lde", x, x))
    assert sums.n == 150
