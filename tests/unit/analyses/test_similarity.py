"""Similarity analysis and the scan engine against an all-in-memory plain-transformers result."""

from __future__ import annotations

import pytest
import torch

from hublens import semantic_hub_scan
from hublens.analyses.similarity import Similarity
from hublens.data import ParallelData
from hublens.hooks import attached_hooks
from tests.helpers.lens_reference import hidden_states, token_ids

RECORDS = [
    {"en": "The cat sleeps on the warm mat.", "zh": "猫在温暖的垫子上睡觉。",
     "fr": "Le chat dort."},
    {"en": "three plus two equals five", "zh": "三加二等于五", "fr": "trois plus deux"},
    {"en": "flower", "zh": "花", "fr": "fleur"},
    {"en": "def add(a, b): return a + b", "zh": "加法", "fr": "Le tapis chaud."},
    {"en": "3+2=5 and 4*2=8", "zh": "猫在睡觉", "fr": "Français: fleur"},
]


def _hidden_last(reference, model, texts, *, last_layer="output"):
    """(L, n, d) last-token states, one text at a time, from plain transformers.

    ``"output"``: ``output_hidden_states[1:]`` (the last entry is the model's final-normed output,
    as the paper's code reads); ``"residual"``: the last block's raw output there (a hook).
    """
    states = []
    for t in texts:
        ids = torch.tensor([token_ids(model, t)])
        if last_layer == "residual":
            states.append(hidden_states(reference, ids)[:, -1])
            continue
        with torch.no_grad():
            hs = reference(input_ids=ids, output_hidden_states=True).hidden_states
        states.append(torch.stack([h[0, -1] for h in hs[1:]]).float())
    return torch.stack(states, dim=1).double()


def _adjusted_in_memory(x, y):
    """Eq. 1 on the full n x n cosine matrix, per layer: (mean, per-item values)."""
    xn, yn = x / x.norm(dim=-1, keepdim=True), y / y.norm(dim=-1, keepdim=True)
    cos = torch.einsum("lid,ljd->lij", xn, yn)
    n = cos.shape[-1]
    diag = cos.diagonal(dim1=-2, dim2=-1)
    off = (cos.sum(-1) - diag) / (n - 1)
    return diag - off


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_adjusted_cosine_equals_in_memory_formula(tiny, batch_size):
    model, reference, _ = tiny
    data = ParallelData.from_records(RECORDS, name="mini")
    result = semantic_hub_scan(
        model, data, analyses=[Similarity(cues={})], batch_size=batch_size, progress=False
    )
    x = _hidden_last(reference, model, data.column("en"))
    for other in ("zh", "fr"):
        y = _hidden_last(reference, model, data.column(other))
        per_item = _adjusted_in_memory(x, y)  # (L, n)
        n = per_item.shape[1]
        sem = per_item.std(dim=1) / n**0.5
        for layer in range(model.n_layers):
            rows = {r.metric: r for r in result.select("similarity", group=f"en-{other}")
                    if r.layer == layer}
            adj = rows["adjusted_cosine"]
            assert adj.n == n
            assert abs(adj.mean - per_item[layer].mean().item()) < 1e-4
            half = 2.776 * sem[layer].item()  # t(0.975, df=4)
            assert abs((adj.ci_high - adj.ci_low) / 2 - half) < 1e-4
    assert attached_hooks(model) == []


def test_centered_and_grouped_variants(tiny):
    model, reference, _ = tiny
    records = [dict(r, meta={"g": str(i % 2)}) for i, r in enumerate(RECORDS)]
    data = ParallelData.from_records(records, name="mini")
    result = semantic_hub_scan(
        model, data,
        analyses=[Similarity(name="c", pairs=[("en", "zh")], cues={}, centered=True),
                  Similarity(name="g", pairs=[("en", "zh")], cues={}, group_by="g")],
        batch_size=2, progress=False,
    )
    x = _hidden_last(reference, model, data.column("en"))
    y = _hidden_last(reference, model, data.column("zh"))
    xc, yc = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    centred = torch.nn.functional.cosine_similarity(xc, yc, dim=-1).mean(1)
    xn, yn = x / x.norm(dim=-1, keepdim=True), y / y.norm(dim=-1, keepdim=True)
    cos = torch.einsum("lid,ljd->lij", xn, yn)
    groups = torch.tensor([i % 2 for i in range(len(RECORDS))])
    same = (groups[:, None] == groups[None, :]) & ~torch.eye(len(RECORDS), dtype=torch.bool)
    diff = groups[:, None] != groups[None, :]
    # Item-level means: for each i, mean over j in the set, then mean over i.
    same_mean = ((cos * same).sum(-1) / same.sum(-1)).mean(-1)
    diff_mean = ((cos * diff).sum(-1) / diff.sum(-1)).mean(-1)
    for layer in range(model.n_layers):
        got = {(r.analysis, r.metric): r.mean for r in result.rows if r.layer == layer}
        assert abs(got[("c", "centered_cosine")] - centred[layer].item()) < 1e-4
        assert abs(got[("g", "cosine_exact_match")] - cos[layer].diagonal().mean().item()) < 1e-4
        assert abs(got[("g", "cosine_same_group")] - same_mean[layer].item()) < 1e-4
        assert abs(got[("g", "cosine_different_group")] - diff_mean[layer].item()) < 1e-4


def test_scan_bad_input(tiny):
    model, _, _ = tiny
    data = ParallelData.from_records(RECORDS, name="mini")
    with pytest.raises(ValueError, match="not a type"):
        semantic_hub_scan(model, data, analyses=[Similarity(pairs=[("en", "de")])], progress=False)
    with pytest.raises(ValueError, match="batch_size"):
        semantic_hub_scan(model, data, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="out of range"):
        semantic_hub_scan(model, data, layers=[99], progress=False)
    with pytest.raises(ValueError, match="duplicate names"):
        semantic_hub_scan(model, data, analyses=[Similarity(), Similarity()], progress=False)
    with pytest.raises(ValueError):
        semantic_hub_scan(model, ParallelData.from_records(RECORDS[:1], name="one"),
                          analyses=[Similarity()], progress=False)
    with pytest.raises(ValueError, match="group_by"):
        semantic_hub_scan(model, data, analyses=[Similarity(group_by="nope")], progress=False)
    assert attached_hooks(model) == []


def test_streaming_memory_is_bounded(tiny):
    """Pending buffers hold at most one length-sorting window of texts, whatever the data size."""
    from hublens.scan import SORT_WINDOW

    model, _, _ = tiny

    def peak_pending(n_items):
        records = [{"en": f"cat {i}", "zh": f"猫 {i}"} for i in range(n_items)]
        analysis = Similarity(cues={})
        peak = []
        original = analysis.update

        def spy(indices, states):
            original(indices, states)
            peak.append(sum(len(v) for v in analysis._pending.values()))

        analysis.update = spy
        semantic_hub_scan(model, records, analyses=[analysis], batch_size=4, progress=False)
        return max(peak)

    small, large = peak_pending(40), peak_pending(120)
    assert large == small <= SORT_WINDOW * 4


def _no_self_check() -> dict:
    """``check=False`` where the scan runs a self-check forward first (it is not the scan's)."""
    import inspect

    return {"check": False} if "check" in inspect.signature(semantic_hub_scan).parameters else {}


@pytest.mark.parametrize("layers", [[0], [0, 1], None])
def test_scan_stops_after_the_last_scanned_layer(layers):
    """Blocks after the last scanned layer never start, nor the final norm inside the forward
    (similarity applies it to the captured last-token rows only); states are exact."""
    import hublens
    from tests.conftest import build_tiny

    hf, reference, tokenizer = build_tiny("llama", seed=3)
    model = hublens.load_model(hf, tokenizer)
    data = ParallelData.from_records(RECORDS, name="mini")
    calls: list[object] = []
    # a block's attention starts only when the block computes (a stop check precedes it)
    modules = {**{i: block.attn for i, block in enumerate(hf.model.layers)},
               "norm": hf.model.norm}
    handles = [
        module.register_forward_pre_hook(  # started (the norm: only on (batch, pos, d) input)
            lambda m, a, key=key: calls.append(key) if key != "norm" or a[0].dim() == 3 else None
        )
        for key, module in modules.items()
    ]
    try:
        result = semantic_hub_scan(
            model, data, analyses=[Similarity(cues={})], layers=layers, batch_size=2,
            progress=False, **_no_self_check(),
        )
    finally:
        for handle in handles:
            handle.remove()
    last = model.n_layers - 1 if layers is None else max(layers)
    assert "norm" not in calls  # the final norm (and so the unembedding) never ran
    assert set(calls) == set(range(last + 1))
    x = _hidden_last(reference, model, data.column("en"))
    y = _hidden_last(reference, model, data.column("zh"))
    expected = _adjusted_in_memory(x, y).mean(1)
    rows = [r for r in result.select("similarity", group="en-zh") if r.metric == "adjusted_cosine"]
    assert sorted(r.layer for r in rows) == (layers or list(range(model.n_layers)))
    for row in rows:
        assert abs(row.mean - expected[row.layer].item()) < 1e-5
    assert attached_hooks(model) == []
