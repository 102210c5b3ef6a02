"""Lens grids travel in ScanResult.extras: JSON round trip, combine, and the report section."""

from __future__ import annotations

from hublens.analysis import Row
from hublens.data import ParallelData
from hublens.report import render_html
from hublens.results import ScanResult
from hublens.views import lens_grid
from hublens.views.examples import example_texts


def _result(name, grids):
    rows = [Row("similarity", 0, "cos", "all", 0.5, 0.4, 0.6, 3)]
    provenance = {"model": {"name": "tiny"}, "data": {"name": name}, "layers": [0]}
    return ScanResult(rows, provenance, extras={"lens_grids": grids} if grids else {})


def test_report_shows_escaped_grids_and_json_round_trips(tiny_llama):
    model, _ = tiny_llama
    grid = lens_grid(model, "<script>alert(1)</script>", layers=[0, 1], label="<i>zh</i>")
    result = _result("a", [grid.to_dict()])
    page = render_html(result)
    assert 'id="lens-grids"' in page and "grid-0" in page
    assert "<script>alert(1)" not in page and "<i>zh</i>" not in page
    again = ScanResult.from_json(result.to_json())
    assert again.extras == result.extras
    assert "extras" not in _result("b", []).to_dict()  # unchanged JSON without grids
    assert 'id="lens-grids"' not in render_html(_result("b", []))
    both = ScanResult.combine([result, _result("c", [grid.to_dict(), grid.to_dict()])])
    assert len(both.extras["lens_grids"]) == 3


def test_example_rule_per_data_set():
    zh = example_texts(ParallelData.load("multilingual-sentences"))
    assert [kind for _, _, kind in zh] == ["zh"]
    arithmetic = example_texts(ParallelData.load("arithmetic"))
    assert arithmetic[0][1:] == ("2=1+", "numeral") and arithmetic[1][2] == "zh"
    code = example_texts(ParallelData.load("code-lists"))
    assert len(code) == 1 and "\n" not in code[0][1] and len(code[0][1]) <= 60


def test_example_grids_on_a_tiny_model(tiny_llama):
    from hublens.views.examples import example_grids

    model, _ = tiny_llama
    grids = example_grids(model, ParallelData.load("arithmetic"))
    assert [g.label for g in grids] == ["arithmetic · lens prompt", "arithmetic · zh"]
    assert set(grids[0].marks) == {"target: numeral", "dominant: en"}
    assert set(grids[1].marks) == {"target: zh", "dominant: en"}
    assert grids[0].text == "2=1+" and len(grids[0].layers) == model.n_layers
