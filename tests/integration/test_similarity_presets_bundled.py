"""Similarity presets on the real Gemma-3-270M against the paper's transcription (every layer).

The reference model is the bundled GGUF dequantised by plain transformers (never hublens's cache
or the bridge); the references are ``tests/reference/semantic_hub.py`` and numpy formulas. The
data are our own sentences (never the bundled data sets), with endings that exercise the cue rule.
"""

from __future__ import annotations

import numpy as np
import pytest

from hublens import semantic_hub_scan
from hublens.analyses import Similarity
from hublens.data import ParallelData
from hublens.hooks import attached_hooks
from hublens.stats import t95
from tests.reference import semantic_hub as paper

pytestmark = pytest.mark.integration

PAIRS = [
    ("The river is cold in winter.", "冬天河水很冷。", "a"),
    ("My brother plays the piano.", "我哥哥弹钢琴。", "b"),
    ("She bought three red apples.", "她买了三个红苹果。", "a"),
    ('He said "good morning."', "他说早上好", "b"),
    ("open the window", "打开窗户", "a"),
    ("The train leaves at noon.", "火车中午出发。", "c"),
    ("Birds sing in the garden.", "鸟在花园里唱歌。", "c"),
    ("a small wooden table", "一张小木桌", "b"),
]


@pytest.fixture(scope="module")
def gemma_pair(gemma_reference):
    """(HubModel, the same GGUF dequantised by plain transformers)."""
    model, reference = gemma_reference
    yield model, reference
    assert attached_hooks(model) == []


@pytest.fixture(scope="module")
def data():
    records = [{"en": en, "zh": zh, "meta": {"g": g}} for en, zh, g in PAIRS]
    return ParallelData.from_records(records, name="own-sentences")


def _rows(result, name):
    return {(r.metric, r.layer): r for r in result.rows if r.analysis == name}


def test_presets_equal_the_transcription_at_every_layer(gemma_pair, data):
    model, reference = gemma_pair
    tok = model.tokenizer
    assert tok("猫").input_ids[0] == tok.bos_token_id and model.prepend_bos  # same BOS policy
    result = semantic_hub_scan(
        model,
        data,
        batch_size=3,
        progress=False,
        analyses=[
            Similarity(name="paper", method="semantic-hub"),
            Similarity(name="hub", cues={}),
            Similarity(name="centred", centered=True, cues={}),
            Similarity(name="groups", method="semantic-hub", group_by="g", cues={}),
        ],
    )
    en, zh = data.column("en"), data.column("zh")
    n, layers = len(data), range(model.n_layers)
    ref = paper.similarity(reference, tok, en, zh)  # cues by the paper's rule
    rows = _rows(result, "paper")
    for layer in layers:
        per_item = ref["per_item"][layer]
        row = rows[("adjusted_cosine", layer)]
        assert abs(row.mean - per_item.mean()) < 1e-4, layer
        half = t95(n - 1) * per_item.std(ddof=1) / np.sqrt(n)
        assert abs((row.ci_high - row.ci_low) / 2 - half) < 1e-4, layer
        assert abs(rows[("baseline_cosine", layer)].mean - ref["baseline"][layer]) < 1e-4
    # no cues: hublens's per-item baseline and the centred cosine from the same states
    x = paper.last_token_states(reference, tok, en).astype(np.float64)  # (n, L, d)
    y = paper.last_token_states(reference, tok, zh).astype(np.float64)
    xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=-1, keepdims=True)
    cos = np.einsum("ild,jld->lij", xn, yn)
    diag = np.einsum("lii->li", cos)
    per_item = diag - (cos.sum(-1) - diag) / (n - 1)
    xc, yc = x - x.mean(0), y - y.mean(0)  # the old two-pass formula: means, then cosines
    centred = (xc * yc).sum(-1) / (np.linalg.norm(xc, axis=-1) * np.linalg.norm(yc, axis=-1))
    groups = paper.arithmetic_groups(paper.cosine_matrix(x, y), [("+", 0, 0, g) for *_, g in PAIRS])
    hub, cen, grp = _rows(result, "hub"), _rows(result, "centred"), _rows(result, "groups")
    for layer in layers:
        assert abs(hub[("adjusted_cosine", layer)].mean - per_item[layer].mean()) < 1e-4, layer
        assert abs(cen[("centered_cosine", layer)].mean - centred[:, layer].mean()) < 1e-4, layer
        for key, metric in (
            ("exact_match", "cosine_exact_match"),
            ("same_result", "cosine_same_group"),
            ("different_result", "cosine_different_group"),
            ("diff", "cosine_diff"),
        ):
            assert abs(grp[(metric, layer)].mean - groups[key][layer]) < 1e-4, (metric, layer)
    last = model.n_layers - 1
    assert result.options["paper"]["last_layer"] == f"output (final norm applied at layer {last})"
    assert attached_hooks(model) == []
