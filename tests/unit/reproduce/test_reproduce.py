"""The reproduce verdict rules on crafted rows, and one small run on a tiny model."""

from __future__ import annotations

import json

import pytest

from hublens.analysis import Row
from hublens.reproduce import CLAIMS, middle_layers, reproduce, verdicts_for
from hublens.reproduce.claims import (
    ci_above_zero,
    middle_then_last,
    ordered,
    share_above_half,
)

N = 8  # middle layers 2..5


def _rows(analysis, metric, group, means, half=0.01, n=10):
    return [
        Row(analysis, layer, metric, group, float(m), m - half, m + half, n)
        for layer, m in enumerate(means)
    ]


def test_middle_layers():
    assert middle_layers(8) == [2, 3, 4, 5]
    assert middle_layers(18) == [5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert middle_layers(1) == [1] or middle_layers(1) == [0]


def test_ci_above_zero_needs_most_middle_layers():
    rule = ci_above_zero("similarity", "adjusted_cosine", "en-zh")
    # CI above 0 at middle layers 2, 3, 4 of 2..5: 3/4 > half -> reproduced
    yes = _rows("similarity", "adjusted_cosine", "en-zh", [0, 0, 0.1, 0.1, 0.1, 0.0, 0, 0])
    v = rule(yes, N)
    assert v.verdict == "reproduced" and v.numbers["middle_layers_above_0"] == [2, 3, 4]
    # exactly half (2/4) is not a majority; the first/last layers do not count
    half = _rows("similarity", "adjusted_cosine", "en-zh", [1, 1, 0.1, 0.1, 0, 0, 1, 1])
    assert rule(half, N).verdict == "not reproduced"
    # another group's rows are ignored
    other = _rows("similarity", "adjusted_cosine", "en-fr", [1] * N)
    assert rule(other, N).verdict == "not measured"


def test_share_above_half_is_strict():
    rule = share_above_half("arithmetic_lens", "frac_word_gt_numeral", "all")
    at_half = _rows(
        "arithmetic_lens", "frac_word_gt_numeral", "all", [0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.9, 0.9]
    )
    assert rule(at_half, N).verdict == "not reproduced"  # 0.9 outside the middle does not count
    over = _rows("arithmetic_lens", "frac_word_gt_numeral", "all", [0, 0, 0.2, 0.51, 0.3, 0, 0, 0])
    v = rule(over, N)
    assert v.verdict == "reproduced" and v.numbers["peak_layer"] == 3


def test_middle_then_last_needs_both():
    rule = middle_then_last("translation_lens", "p_dominant", "p_target", None)
    dom = _rows("translation_lens", "p_dominant", "fr->zh", [0, 0, 0.1, 0.3, 0.2, 0.1, 0.05, 0.01])
    tgt = _rows("translation_lens", "p_target", "fr->zh", [0, 0, 0.0, 0.1, 0.1, 0.2, 0.3, 0.5])
    v = rule(dom + tgt, N)
    assert v.verdict == "reproduced" and v.numbers["middle_layers_dominant_wins"] == [2, 3, 4]
    late = _rows("translation_lens", "p_target", "fr->zh", [0, 0, 0.0, 0.1, 0.1, 0.2, 0.3, 0.001])
    assert rule(dom + late, N).verdict == "not reproduced"  # English still wins at the end
    never = _rows("translation_lens", "p_target", "fr->zh", [1] * N)
    assert rule(dom + never, N).verdict == "not reproduced"


def test_ordered_rule():
    rule = ordered("g", ("a", "b", "c"), None)
    rows = (
        _rows("g", "a", "x", [3] * N) + _rows("g", "b", "x", [2] * N)
        + _rows("g", "c", "x", [1, 1, 1, 1, 1, 5, 5, 5])
    )  # fmt: skip
    v = rule(rows, N)
    assert v.verdict == "reproduced" and v.numbers["middle_layers_ordered"] == [2, 3, 4]
    rows_bad = (
        _rows("g", "a", "x", [1] * N)
        + _rows("g", "b", "x", [2] * N)
        + _rows("g", "c", "x", [0] * N)
    )
    assert rule(rows_bad, N).verdict == "not reproduced"


def test_verdicts_for_every_claim_and_media():
    rows = {"arithmetic": _rows("arithmetic_lens", "frac_word_gt_numeral", "all", [0.9] * N)}
    v = verdicts_for(rows, N)
    assert set(v) == {c.key for c in CLAIMS}
    assert v["arithmetic_lens"].verdict == "reproduced"
    assert v["arithmetic_similarity"].verdict == "not measured"  # scanned, but no such rows
    assert v["multilingual_similarity"].verdict == "not measured"  # not scanned
    assert v["vision"].verdict == "not applicable" and v["audio"].verdict == "not applicable"


def test_bad_arguments_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="size="):
        reproduce(object(), tmp_path, size="huge")
    with pytest.raises(ValueError, match="data="):
        reproduce(object(), tmp_path, data=["imagenet"])


def test_small_run_writes_report_and_json(tiny_llama, tmp_path):
    model, _ = tiny_llama
    result = reproduce(model, tmp_path, data=["arithmetic", "trajectories"], log=None)
    payload = json.loads((tmp_path / "reproduce.json").read_text())
    keys = [c["key"] for c in payload["claims"]]
    assert keys == [c.key for c in CLAIMS]
    by_key = {c["key"]: c for c in payload["claims"]}
    # the verdict in the file is the rule applied to the rows in the file
    again = verdicts_for(result.rows, model.n_layers)
    assert by_key["arithmetic_lens"]["verdict"] == again["arithmetic_lens"].verdict
    assert by_key["arithmetic_trajectories"]["verdict"] in ("reproduced", "not reproduced")
    assert by_key["multilingual_similarity"]["verdict"] == "not measured"
    page = (tmp_path / "reproduce.html").read_text()
    assert "paper&#x27;s claim" in page or "paper's claim" in page
    assert "Arithmetic trajectories" in page and 'id="lens-grids"' in page
