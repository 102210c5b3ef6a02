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
from hublens.analyses import PairSums
from hublens.data import ParallelData
from hublens.distributed import decode_states, encode_states, fold_states_, shard_indices
from hublens.hooks import attached_hooks
from hublens.scan import _query_lists, collect
from hublens.stats import KeyedStat, MeanStat, SumStat
from tests.conftest import build_tiny
from tests.helpers.distributed_analyses import make_analyses, records

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
    merged = MeanStat()
    fold_states_([merged], [[s.state()] for s in stats])
    assert merged.n == 37
    np.testing.assert_allclose(merged.mean.numpy(), values.mean(0), rtol=1e-12)
    np.testing.assert_allclose((merged.m2 / 36).numpy(), values.var(0, ddof=1), rtol=1e-12)


def test_state_round_trips_without_pickle():
    sums = KeyedStat(PairSums)
    sums.slot(("en", "zh")).add(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
    stats = KeyedStat(MeanStat)
    stats.slot("a").add(torch.randn(5, 2))
    stats.slot("empty")
    groups = KeyedStat(SumStat)
    groups.slot((("en", "zh"), "7")).add(torch.ones(2, 4), count=3)
    payload = encode_states([sums.state(), stats.state(), groups.state()])
    assert b"pickle" not in payload and payload[8:9] == b"["  # JSON structure, then tensors
    back = [s.empty() for s in (sums, stats, groups)]
    for stat, state in zip(back, decode_states(payload), strict=True):
        stat.load_state(state)
    assert back[0][("en", "zh")].n == 3
    assert torch.equal(back[0][("en", "zh")].m_x, sums[("en", "zh")].m_x)
    assert torch.equal(back[1]["a"].m2, stats["a"].m2) and back[1]["empty"].n == 0
    assert list(back[2]) == [(("en", "zh"), "7")] and back[2][(("en", "zh"), "7")].n == 3
    assert torch.equal(back[2][(("en", "zh"), "7")].total, torch.ones(2, 4))


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
            active = [k for k, a in enumerate(analyses) if a.n_passes() > p]
            collect(model, [analyses[k] for k in active], [queries[k] for k in active],
                    layers=layers, batch_size=4, progress=False)
        for k, analysis in enumerate(per_rank[0]):
            if analysis.n_passes() <= p:
                continue
            # what all_reduce_stats does after its all-gather, through the wire format
            sent = [decode_states(encode_states([s.state() for s in r[k].statistics()]))
                    for r in per_rank]
            for r in per_rank:
                fold_states_(r[k].statistics(), sent)
                if p + 1 < analysis.n_passes():
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
        str(ROOT / "tests" / "helpers" / "distributed_worker.py"),
        str(folder), str(data_path), str(tmp_path),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    want = _sorted(expected.table())
    for rank in range(2):
        got = pd.read_csv(tmp_path / f"rank{rank}.csv")
        got["group"] = got["group"].fillna("").astype(str)  # "" (no group) reads back as NaN
        got["lens"] = got["lens"].fillna("").astype(str)  # "" (no lens): the same
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
    from hublens.analyses import TranslationLens

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


def test_analysis_without_statistics_is_refused_before_any_forward(folder_model, monkeypatch):
    from tests.helpers.distributed_analyses import GroupNorm

    class Undeclared(GroupNorm):
        statistics = GroupNorm.__mro__[1].statistics  # the contract's default: none declared

        def update(self, indices, states):  # pragma: no cover - must never run
            raise AssertionError("a forward pass ran")

    _, model = folder_model
    for key, value in {"RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="declares no statistics"):
        semantic_hub_scan(model, _data(), analyses=[Undeclared()], progress=False,
                          distributed=True)
    assert attached_hooks(model) == []


def test_pair_sums_blocked_second_moment_equals_one_einsum():
    x = torch.nn.functional.normalize(torch.randn(3, 150, 5, dtype=torch.float64), dim=-1)
    y = torch.nn.functional.normalize(torch.randn(3, 150, 5, dtype=torch.float64), dim=-1)
    sums = PairSums()
    for start in range(0, 150, 7):  # crosses the 64-item block boundary twice
        sums.add(x[:, start : start + 7], y[:, start : start + 7])
    sums.flush()
    torch.testing.assert_close(sums.m_x, torch.einsum("lbd,lbe->lde", x, x))
    assert sums.n == 150
