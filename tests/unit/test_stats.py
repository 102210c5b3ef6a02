"""Streaming statistics: shards merged (the all-reduce's fold) equal one pass over all data."""

from __future__ import annotations

import socket

import numpy as np
import pytest
import torch

from hublens.analyses import PairSums
from hublens.distributed import decode_states, encode_states, fold_states_
from hublens.stats import KeyedStat, MeanStat, Stat, SumStat


def _reduce(shards: list[Stat]) -> Stat:
    """What every rank holds after ``all_reduce_``: the gathered states (through the wire
    format) folded in rank order into a statistic of the same kind."""
    sent = [decode_states(encode_states([s.state()])) for s in shards]
    out = shards[0].empty()
    fold_states_([out], sent)
    return out


def _cuts(n: int) -> list[slice]:
    return [slice(0, 5), slice(5, 6), slice(6, 6), slice(6, n)]  # uneven, one shard empty


def test_meanstat_shards_equal_numpy_mean_and_variance():
    values = np.random.default_rng(0).normal(size=(37, 3, 2))
    shards = []
    for cut in _cuts(37):
        stat = MeanStat()
        stat.add(torch.from_numpy(values[cut]))
        shards.append(stat)
    merged = _reduce(shards)
    assert isinstance(merged, MeanStat) and merged.n == 37
    np.testing.assert_allclose(merged.mean.numpy(), values.mean(0), rtol=1e-12)
    np.testing.assert_allclose((merged.m2 / 36).numpy(), values.var(0, ddof=1), rtol=1e-12)
    mean, low, high = merged.ci()
    # t(0.975, df=36) = 2.028; the lookup table is conservative (df=30's 2.042): within 1%
    half = 2.028 * values.std(0, ddof=1) / np.sqrt(37)
    np.testing.assert_allclose(mean.numpy(), values.mean(0), rtol=1e-12)
    np.testing.assert_allclose((high - low).numpy() / 2, half, rtol=1e-2)
    assert np.all((high - low).numpy() / 2 >= half)


def test_sumstat_shards_equal_the_total():
    values = np.random.default_rng(1).normal(size=(20, 4))
    shards = []
    for cut in _cuts(20):
        stat = SumStat()
        for row in values[cut]:
            stat.add(torch.from_numpy(row))
        shards.append(stat)
    merged = _reduce(shards)
    assert isinstance(merged, SumStat) and merged.n == 20
    np.testing.assert_allclose(merged.total.numpy(), values.sum(0), rtol=1e-12)
    np.testing.assert_allclose(merged.mean().numpy(), values.mean(0), rtol=1e-12)


def test_keyed_stat_unites_keys_seen_by_one_shard_only():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(30, 2))
    groups = ["solo"] + [("a", 1) if i % 3 else ("b", 2) for i in range(1, 29)] + ["late"]
    shards = []
    for cut in (slice(0, 10), slice(10, 30)):
        stat = KeyedStat(MeanStat)
        for value, group in zip(values[cut], groups[cut], strict=True):
            stat.slot(group).add(torch.from_numpy(value)[None])
        shards.append(stat)
    assert "solo" not in shards[1] and "late" not in shards[0]
    merged = _reduce(shards)
    assert isinstance(merged, KeyedStat)
    assert list(merged) == ["solo", ("a", 1), ("b", 2), "late"]  # tuple keys survive the wire
    for key in merged:
        rows = values[[g == key for g in groups]]
        assert merged[key].n == len(rows)
        np.testing.assert_allclose(merged[key].mean.numpy(), rows.mean(0), rtol=1e-12)


def test_pair_sums_shards_equal_sums_over_all_items():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 150, 5))
    y = rng.normal(size=(2, 150, 5))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    shards = []
    for cut in (slice(0, 70), slice(70, 71), slice(71, 150)):  # 70 crosses the 64-item block
        stat = PairSums()
        for start in range(cut.start, cut.stop, 9):
            stop = min(start + 9, cut.stop)
            stat.add(torch.from_numpy(x[:, start:stop]), torch.from_numpy(y[:, start:stop]))
        shards.append(stat)
    merged = _reduce(shards)
    assert isinstance(merged, PairSums) and merged.n == 150
    a = (x * y).sum(-1)  # (L, n) cosines
    np.testing.assert_allclose(merged.sum_a.numpy(), a.sum(1), rtol=1e-10)
    np.testing.assert_allclose(merged.sum_a2.numpy(), (a**2).sum(1), rtol=1e-10)
    np.testing.assert_allclose(merged.sum_ax.numpy(), np.einsum("ln,lnd->ld", a, x), atol=1e-10)
    np.testing.assert_allclose(merged.sum_y.numpy(), y.sum(1), atol=1e-10)
    np.testing.assert_allclose(merged.m_x.numpy(), np.einsum("lnd,lne->lde", x, x), atol=1e-10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_all_reduce_in_a_process_group_of_one_keeps_every_stat():
    """The collective path itself (gloo, world 1); two ranks run in test_distributed.py."""
    import torch.distributed as dist

    if dist.is_initialized():
        pytest.skip("a process group is already set up in this process")
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1
    )
    try:
        mean, keyed = MeanStat(), KeyedStat(SumStat)
        values = torch.randn(6, 3, dtype=torch.float64)
        mean.add(values)
        keyed.slot(("en", "zh")).add(values[0])
        mean.all_reduce_()
        keyed.all_reduce_()
        assert mean.n == 6
        torch.testing.assert_close(mean.mean, values.mean(0), rtol=1e-12, atol=0)
        assert list(keyed) == [("en", "zh")]
        torch.testing.assert_close(keyed[("en", "zh")].total, values[0], rtol=0, atol=0)
    finally:
        dist.destroy_process_group()


def test_fold_refuses_ranks_with_different_statistics():
    with pytest.raises(RuntimeError, match="same analyses"):
        fold_states_([MeanStat()], [[MeanStat().state()], []])
