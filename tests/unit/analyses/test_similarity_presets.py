"""Similarity presets, the last-layer rule and one-pass centring against independent references.

References: ``tests/reference/semantic_hub.py`` (the paper's code transcribed on plain
transformers, no hublens import) and numpy formulas over plain-transformers hidden states.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hublens import semantic_hub_scan
from hublens.analyses.similarity import Similarity
from hublens.analyses.similarity_method import append_cue
from hublens.data import ParallelData
from hublens.hooks import attached_hooks
from hublens.stats import t95
from tests.helpers.lens_reference import hidden_states, token_ids
from tests.reference import semantic_hub as paper

RECORDS = [
    {"en": "The cat sleeps on the warm mat.", "zh": "猫在温暖的垫子上睡觉。", "g": "a"},
    {"en": "three plus two equals five", "zh": "三加二等于五", "g": "b"},
    {"en": "flower", "zh": "花。", "g": "a"},
    {"en": 'He said "fleur."', "zh": "加法", "g": "b"},
    {"en": "3+2=5 and 4*2=8.", "zh": "猫在睡觉。", "g": "a"},
    {"en": "The warm cat.", "zh": "温暖的猫", "g": "c"},
]


def _data(name="mini"):
    records = [{"en": r["en"], "zh": r["zh"], "meta": {"g": r["g"]}} for r in RECORDS]
    return ParallelData.from_records(records, name=name)


def _rows(result, name):
    return {(r.metric, r.layer): r for r in result.rows if r.analysis == name}


def _numpy_states(model, reference, texts, *, last_layer="output"):
    """(n, L, d) float64 last-token states from plain transformers (last layer normed)."""
    out = []
    for t in texts:
        ids = torch.tensor([token_ids(model, t)])
        if last_layer == "residual":
            out.append(hidden_states(reference, ids)[:, -1].numpy())
            continue
        with torch.no_grad():
            hs = reference(input_ids=ids, output_hidden_states=True).hidden_states
        out.append(torch.stack([h[0, -1] for h in hs[1:]]).float().numpy())
    return np.stack(out).astype(np.float64)


def test_cue_rule_equals_the_transcription():
    zh, en = [r["zh"] for r in RECORDS], [r["en"] for r in RECORDS]
    want_zh, want_en = paper.add_cues(zh, en)
    cues = {"en": "This represents", "zh": "这代表了"}
    assert [append_cue(t, "en", cues, "sentence-final") for t in en] == want_en
    assert [append_cue(t, "zh", cues, "sentence-final") for t in zh] == want_zh
    assert append_cue("flower", "en", {"en": " X"}, "always") == "flower X"
    assert append_cue("A cat.", "fr", {"en": " X"}, "sentence-final") == "A cat."  # no fr cue


def test_semantic_hub_preset_equals_the_transcription_at_every_layer(tiny):
    model, reference, _ = tiny
    data = _data()
    result = semantic_hub_scan(
        model,
        data,
        batch_size=4,
        progress=False,
        analyses=[
            Similarity(name="paper", pairs=[("en", "zh")], method="semantic-hub"),
            Similarity(
                name="grouped", pairs=[("en", "zh")], method="semantic-hub", group_by="g", cues={}
            ),
        ],
    )
    tok = model.tokenizer
    ref = paper.similarity(reference, tok, data.column("en"), data.column("zh"))
    n = len(data)
    rows = _rows(result, "paper")
    assert sorted({layer for _, layer in rows}) == list(range(model.n_layers))  # last included
    for layer in range(model.n_layers):
        per_item = ref["per_item"][layer]
        adj = rows[("adjusted_cosine", layer)]
        assert abs(adj.mean - per_item.mean()) < 1e-4
        half = t95(n - 1) * per_item.std(ddof=1) / np.sqrt(n)  # CI of the global-baseline values
        assert abs((adj.ci_high - adj.ci_low) / 2 - half) < 1e-4
        assert abs(rows[("baseline_cosine", layer)].mean - ref["baseline"][layer]) < 1e-4
    # the grouped comparison (arithmetic/similarity.py: pooled pairs, diagonal included)
    cos = paper.cosine_matrix(
        paper.last_token_states(reference, tok, data.column("en")),
        paper.last_token_states(reference, tok, data.column("zh")),
    )
    items = [("+", 0, 0, r["g"]) for r in RECORDS]  # the group label as the "result"
    groups = paper.arithmetic_groups(cos, items)
    grouped = _rows(result, "grouped")
    names = {
        "exact_match": "cosine_exact_match",
        "same_result": "cosine_same_group",
        "different_result": "cosine_different_group",
        "diff": "cosine_diff",
    }
    for layer in range(model.n_layers):
        for key, metric in names.items():
            assert abs(grouped[(metric, layer)].mean - groups[key][layer]) < 1e-4, (key, layer)
    options = result.options["paper"]
    assert options["method"] == "semantic-hub" and "semantic-hub" in options["method_source"]
    assert options["cue_rule"] == "sentence-final" and options["baseline"] == "global"
    assert options["cues"] == {"en": "This represents", "zh": "这代表了"}
    assert options["last_layer"].startswith("output")
    assert result.options["grouped"]["group_rule"] == "pooled"
    assert attached_hooks(model) == []


def test_hublens_default_last_layer_is_the_output_and_residual_is_an_option(tiny):
    """Default: the normed output at the last layer; ``last_layer="residual"``: the raw residual."""
    model, reference, _ = tiny
    data = _data()
    result = semantic_hub_scan(
        model,
        data,
        batch_size=3,
        progress=False,
        analyses=[
            Similarity(name="out", cues={}),
            Similarity(name="raw", cues={}, last_layer="residual"),
        ],
    )
    last = model.n_layers - 1
    for name, rule in (("out", "output"), ("raw", "residual")):
        x = _numpy_states(model, reference, data.column("en"), last_layer=rule)
        y = _numpy_states(model, reference, data.column("zh"), last_layer=rule)
        xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
        yn = y / np.linalg.norm(y, axis=-1, keepdims=True)
        cos = np.einsum("ild,jld->lij", xn, yn)
        n = cos.shape[-1]
        diag = np.einsum("lii->li", cos)
        per_item = diag - (cos.sum(-1) - diag) / (n - 1)  # hublens's per-item baseline
        rows = _rows(result, name)
        for layer in range(model.n_layers):
            assert abs(rows[("adjusted_cosine", layer)].mean - per_item[layer].mean()) < 1e-5
            assert abs(rows[("cosine", layer)].mean - diag[layer].mean()) < 1e-5
    assert result.options["raw"]["last_layer"] == "residual"
    assert result.options["out"]["method"] == "hublens"
    out, raw = _rows(result, "out"), _rows(result, "raw")
    assert abs(out[("cosine", last)].mean - raw[("cosine", last)].mean) > 1e-4  # the norm matters
    assert out[("cosine", 0)].mean == raw[("cosine", 0)].mean  # only the last layer differs


def _two_pass_centred(x, y):
    """The old two-pass formula: pass 1 the type means, pass 2 the per-item centred cosines."""
    mx, my = x.mean(0), y.mean(0)  # (L, d)
    xc, yc = x - mx, y - my
    cos = (xc * yc).sum(-1) / (np.linalg.norm(xc, axis=-1) * np.linalg.norm(yc, axis=-1))
    return cos  # (n, L)


@pytest.mark.parametrize("spill_bytes", [1 << 30, 0])
def test_one_pass_centred_equals_the_two_pass_formula(tiny, spill_bytes):
    model, reference, _ = tiny
    data = _data()
    analysis = Similarity(
        name="c", pairs=[("en", "zh")], centered=True, cues={}, spill_bytes=spill_bytes
    )
    assert analysis.n_passes() == 1
    result = semantic_hub_scan(model, data, analyses=[analysis], batch_size=2, progress=False)
    if spill_bytes == 0:
        assert analysis._states[("en", "zh")].spilled > 0  # every block went to disk
    cos = _two_pass_centred(
        _numpy_states(model, reference, data.column("en")),
        _numpy_states(model, reference, data.column("zh")),
    )
    n = cos.shape[0]
    rows = _rows(result, "c")
    for layer in range(model.n_layers):
        row = rows[("centered_cosine", layer)]
        assert row.n == n
        assert abs(row.mean - cos[:, layer].mean()) < 1e-5
        half = t95(n - 1) * cos[:, layer].std(ddof=1) / np.sqrt(n)
        assert abs((row.ci_high - row.ci_low) / 2 - half) < 1e-5


def test_bad_options_are_refused_before_any_forward(tiny):
    model, _, _ = tiny
    data = _data()
    for kwargs, match in (
        ({"method": "paper"}, "method='paper'"),
        ({"cue_rule": "sometimes"}, "cue_rule='sometimes'"),
        ({"baseline": "local"}, "baseline='local'"),
        ({"last_layer": "normed"}, "last_layer='normed'"),
        ({"group_by": "g", "group_rule": "mean"}, "group_rule='mean'"),
        ({"spill_bytes": -1}, "spill_bytes=-1"),
        ({"cues": ["en"]}, "cues="),
    ):
        analysis = Similarity()  # set after construction: the test run type-checks __init__
        for key, value in kwargs.items():
            setattr(analysis, key, value)
        analysis.update = None  # a forward pass would call it
        with pytest.raises(ValueError, match=match):
            semantic_hub_scan(model, data, analyses=[analysis], progress=False)
    assert attached_hooks(model) == []


def test_user_options_win_over_the_preset(tiny):
    model, _, _ = tiny
    analysis = Similarity(method="semantic-hub", cues={"en": " Y"}, baseline="per-item")
    semantic_hub_scan(model, _data(), analyses=[analysis], progress=False)
    assert analysis.options["cues"] == {"en": " Y", "zh": ""}
    assert analysis.options["baseline"] == "per-item"
    assert analysis.options["cue_rule"] == "sentence-final"  # not passed: the preset's
