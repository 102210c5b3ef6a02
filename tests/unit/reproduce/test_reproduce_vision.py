"""The per-patch vision claims of reproduce: their rules on crafted rows, text-only models
skipping them, and one small run on a tiny vision model (real image preprocessing)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from hublens.analysis import Row
from hublens.reproduce import CLAIMS, reproduce, verdicts_for
from hublens.reproduce.claims import ci_above_zero_somewhere
from hublens.reproduce.run import model_media

N = 8  # middle layers 2..5
VISION = {"text", "vision"}


def _rows(metric, lows, *, mean=0.1, group="all", n=24):
    return [
        Row(
            "patch_labels",
            layer,
            metric,
            group,
            float(mean),
            float(low),
            float(low + 2 * (mean - low)),
            n,
            "logit",
        )
        for layer, low in enumerate(lows)
    ]


def test_ci_above_zero_somewhere_needs_one_middle_layer():
    rule = ci_above_zero_somewhere("patch_labels", "top1_label_minus_shuffled", "all")
    one = _rows("top1_label_minus_shuffled", [-1, -1, -0.1, 0.01, -0.1, -0.1, -1, -1])
    v = rule(one, N)
    assert v.verdict == "reproduced" and v.numbers["middle_layers_above_0"] == [3]
    assert v.numbers["best_layer"] == 3
    # above 0 only outside the middle layers (0, 1, 6, 7): not reproduced
    outside = _rows("top1_label_minus_shuffled", [0.05, 0.05, -0.1, 0, -0.1, -0.1, 0.05, 0.05])
    v = rule(outside, N)
    assert v.verdict == "not reproduced" and v.numbers["middle_layers_above_0"] == []
    # a CI touching 0 is not above it; NaN (one image) is not above it either
    assert rule(_rows("top1_label_minus_shuffled", [0.0] * N), N).verdict == "not reproduced"
    nan = _rows("top1_label_minus_shuffled", [float("nan")] * N, n=1)
    assert rule(nan, N).verdict == "not reproduced"
    # another group's rows do not count
    shape = _rows("top1_label_minus_shuffled", [0.1] * N, group="shape")
    assert rule(shape, N).verdict == "not measured"


def test_vision_claims_follow_their_rules_on_crafted_results():
    keys = {c.key for c in CLAIMS}
    assert {"vision_patch_labels", "vision_caption_nouns"} <= keys
    good = _rows("top1_label_minus_shuffled", [-1, -1, -1, -1, 0.02, -1, -1, -1]) + _rows(
        "p_caption_minus_other", [-1, -1, 0.001, 0.001, 0.001, -0.01, -1, -1]
    )  # nouns: CI above 0 at 3 of the 4 middle layers
    v = verdicts_for({"vision-patches": good}, N, VISION)
    assert v["vision_patch_labels"].verdict == "reproduced"
    assert v["vision_caption_nouns"].verdict == "reproduced"
    assert v["vision_caption_nouns"].numbers["middle_layers_above_0"] == [2, 3, 4]
    bad = _rows("top1_label_minus_shuffled", [1, 1, -0.01, -0.01, -0.01, -0.01, 1, 1]) + _rows(
        "p_caption_minus_other", [-1, -1, 0.001, 0.001, -0.01, -0.01, -1, -1]
    )  # nouns: exactly half (2/4) is not most
    v = verdicts_for({"vision-patches": bad}, N, VISION)
    assert v["vision_patch_labels"].verdict == "not reproduced"
    assert v["vision_caption_nouns"].verdict == "not reproduced"
    # the same rows on a text-only model: not applicable; a vision model not scanned: not measured
    text = verdicts_for({"vision-patches": good}, N)
    assert text["vision_patch_labels"].verdict == "not applicable"
    assert text["vision_caption_nouns"].verdict == "not applicable"
    assert verdicts_for({}, N, VISION)["vision_patch_labels"].verdict == "not measured"
    # the lumped vision claim is not run by reproduce on any model
    assert verdicts_for({}, N, VISION)["vision"].verdict == "not applicable"


def test_text_only_model_skips_the_patch_labels(tiny_llama, tmp_path):
    model, _ = tiny_llama
    assert model_media(model) == {"text"}
    lines = []
    result = reproduce(model, tmp_path, data=["vision-patches"], log=lines.append)
    assert "vision-patches" not in result.rows
    assert any("vision-patches skipped (not applicable" in line for line in lines)
    payload = json.loads((tmp_path / "reproduce.json").read_text())
    by_key = {c["key"]: c for c in payload["claims"]}
    assert by_key["vision_patch_labels"]["verdict"] == "not applicable"


WORDS = "red green blue yellow black white gray circle square and a".split()


class PoolEncoder(nn.Module):
    """(1, 3, 224, 224) -> (1, 9, 3): the mean colour of each cell of a 3x3 grid."""

    def __init__(self, declare=True):
        super().__init__()
        if declare:
            from hublens.analyses.patch_images import PatchGrid

            self.patch_grid = PatchGrid(feature_grid=7, grid=3)

    def forward(self, px):
        return nn.functional.adaptive_avg_pool2d(px, 3).flatten(2).transpose(1, 2)


def _tiny_vision(declare):
    import hublens
    from hublens.adapters.base import ModalityAdapter, MultimodalModel
    from hublens.adapters.efficientnet import prepare_image
    from tests.conftest import build_tiny, build_tokenizer

    tok = build_tokenizer(((" ".join(WORDS) + " ") * 3,) * 8, vocab_size=500)
    hf, _, tok = build_tiny("llama", tokenizer=tok)
    lm = hublens.load_model(hf, tok)
    torch.manual_seed(0)
    adapter = ModalityAdapter(
        "image", PoolEncoder(declare), nn.Linear(3, lm.d_model).eval(), prepare=prepare_image
    )
    return MultimodalModel(lm, {"image": adapter})


@pytest.fixture(scope="module")
def tiny_vision():
    return _tiny_vision(True)


def test_unknown_patch_layout_is_not_measured(tmp_path):
    mm = _tiny_vision(False)  # the encoder declares no patch grid
    lines = []
    result = reproduce(mm, tmp_path, data=["vision-patches"], log=lines.append)
    assert "vision-patches" not in result.rows
    v = result.verdicts["vision_patch_labels"]
    assert v.verdict == "not measured" and "patch layout" in v.measured
    assert any("patch layout" in line for line in lines)


def test_small_run_on_a_vision_model(tiny_vision, tmp_path):
    mm = tiny_vision
    assert model_media(mm) == VISION
    result = reproduce(mm, tmp_path, data=["vision-patches"], log=None)
    rows = result.rows["vision-patches"]
    n = {r.n for r in rows if r.group == "all"}
    assert n == {24}  # the quick size
    again = verdicts_for(result.rows, mm.n_layers, VISION)
    for key in ("vision_patch_labels", "vision_caption_nouns"):
        assert result.verdicts[key] == again[key]
        assert result.verdicts[key].verdict in ("reproduced", "not reproduced")
    payload = json.loads((tmp_path / "reproduce.json").read_text())
    assert {c["key"]: c["verdict"] for c in payload["claims"]}["vision_patch_labels"] == (
        again["vision_patch_labels"].verdict
    )
    page = (tmp_path / "reproduce.html").read_text()
    assert "per-patch labels" in page
