"""The figures and the self-contained HTML report, on hand-made ScanResults (no model)."""

from __future__ import annotations

import math
import os
import re
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from hublens import html_page, report
from hublens.analyses.base import Row
from hublens.report import figure, write_html
from hublens.results import ScanResult

EVIL = "<script>alert(1)</script>"
LAYERS = list(range(6))


def _cosine_rows(groups=("en-zh", "en-fr"), analysis="translation"):
    rows = []
    for g, group in enumerate(groups):
        for layer in LAYERS:
            mean = -0.05 + 0.1 * layer + 0.03 * g
            rows.append(
                Row(analysis, layer, "adjusted_cosine", group, mean, mean - 0.02, mean + 0.03, 50)
            )
    return rows


def _lens_rows(analysis="lens"):
    rows = []
    for layer in LAYERS:
        for metric, mean, low, high in (
            ("logp_en", -9.0 + layer, -9.4 + layer, -8.6 + layer),
            ("logp_zh", -2.0 - 0.5 * layer, -2.4 - 0.5 * layer, -1.6 - 0.5 * layer),
            ("frac_top1_en", 0.1 * layer, 0.1 * layer, 0.1 * layer + 0.05),
        ):
            rows.append(Row(analysis, layer, metric, "", mean, low, high, 40))
    return rows


def _result(rows, **kwargs):
    provenance = kwargs.pop("provenance", {"model": {"name": "tiny", "dtype": "float32"}})
    return ScanResult(rows, provenance, **kwargs)


def _traces(fig, role):
    return [t for t in fig.data if t.meta and t.meta["role"] == role]


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y)
        else:
            assert x == y


# ------------------------------------------------------------------------------- figures


def test_figure_traces_carry_exactly_the_row_values():
    result = _result(_cosine_rows())
    fig = figure(result, "translation")
    means = _traces(fig, "mean")
    bands = _traces(fig, "ci")
    assert [(t.meta["metric"], t.meta["group"]) for t in means] == [
        ("adjusted_cosine", "en-zh"),
        ("adjusted_cosine", "en-fr"),
    ]
    assert len(bands) == 2
    for line, band in zip(means, bands, strict=True):
        rows = result.select("translation", line.meta["metric"], line.meta["group"])
        assert list(line.x) == [r.layer for r in rows]
        _same(list(line.y), [r.mean for r in rows])
        assert band.meta == {"role": "ci", **{k: line.meta[k] for k in ("metric", "group")}}
        assert band.fill == "toself"
        # the outline: along ci_high by layer, back along ci_low
        assert list(band.x) == [r.layer for r in rows] + [r.layer for r in reversed(rows)]
        _same(list(band.y), [r.ci_high for r in rows] + [r.ci_low for r in reversed(rows)])
        assert [c[1] for c in line.customdata] == [r.n for r in rows]


def test_figure_labels_axes_and_zero_line():
    fig = figure(_result(_cosine_rows()), "translation")
    assert [t.name for t in _traces(fig, "mean")] == [
        "adjusted_cosine · en-zh",
        "adjusted_cosine · en-fr",
    ]
    assert all(t.showlegend is False for t in _traces(fig, "ci"))
    assert fig.layout.xaxis.title.text == "layer"
    assert fig.layout.yaxis.title.text == "adjusted_cosine"
    assert fig.layout.template.layout.plot_bgcolor in ("white", "rgb(255,255,255)", None)
    zero = [s for s in fig.layout.shapes if s.y0 == 0 and s.y1 == 0]
    assert len(zero) == 1 and zero[0].line.dash == "dash"  # values run from -0.05 upwards


def test_no_zero_line_when_values_do_not_straddle_zero():
    rows = [Row("a", layer, "m", "", 1.0 + layer, 0.5 + layer, 1.5 + layer, 3) for layer in LAYERS]
    fig = figure(_result(rows), "a")
    assert not fig.layout.shapes


def test_metrics_on_different_scales_get_their_own_subplots():
    result = _result(_lens_rows())
    assert report.metric_panels(result.rows) == [["logp_en", "logp_zh"], ["frac_top1_en"]]
    fig = figure(result, "lens")
    axis_of = {t.meta["metric"]: t.yaxis for t in _traces(fig, "mean")}
    assert axis_of["logp_en"] == axis_of["logp_zh"] != axis_of["frac_top1_en"]
    assert fig.layout.yaxis.title.text == "logp_en, logp_zh"
    assert fig.layout.yaxis2.title.text == "frac_top1_en"
    assert fig.layout.xaxis2.title.text == "layer"  # only the bottom panel names the x axis
    assert fig.layout.xaxis.matches == "x2" or fig.layout.xaxis2.matches == "x"  # shared x
    for line in _traces(fig, "mean"):
        rows = result.select("lens", line.meta["metric"])
        _same(list(line.y), [r.mean for r in rows])


def test_comparable_metrics_share_one_panel():
    rows = _cosine_rows()
    rows += [
        Row(
            "translation",
            r.layer,
            "raw_cosine",
            r.group,
            r.mean * 2,
            r.ci_low * 2,
            r.ci_high * 2,
            r.n,
        )
        for r in _cosine_rows()
    ]
    fig = figure(_result(rows), "translation")
    assert {t.yaxis for t in fig.data} == {"y"}
    means = _traces(fig, "mean")
    assert len(means) == 4
    # with several groups and metrics, colour tells the group and the dash the metric
    colour = {(t.meta["metric"], t.meta["group"]): t.line.color for t in means}
    assert colour["adjusted_cosine", "en-zh"] == colour["raw_cosine", "en-zh"]
    assert colour["adjusted_cosine", "en-zh"] != colour["adjusted_cosine", "en-fr"]


def test_nan_cis_are_skipped_in_the_band():
    nan = math.nan
    rows = []
    for layer in LAYERS:
        low, high = (nan, nan) if layer in (2, 3) else (layer - 0.5, layer + 0.5)
        rows.append(Row("a", layer, "m", "", float(layer), low, high, 4))
    rows += [Row("a", layer, "none", "", 10.0 + layer, nan, nan, 1) for layer in LAYERS]
    rows.append(Row("a", 6, "m", "", nan, nan, nan, 0))
    result = _result(rows)
    fig = figure(result, "a")
    band = [t for t in _traces(fig, "ci") if t.meta["metric"] == "m"]
    assert len(band) == 1
    # two runs of finite CIs (layers 0-1 and 4-5), separated by a gap
    assert list(band[0].x) == [0, 1, 1, 0, None, 4, 5, 5, 4]
    assert list(band[0].y) == [0.5, 1.5, 0.5, -0.5, None, 4.5, 5.5, 4.5, 3.5]
    assert not [t for t in _traces(fig, "ci") if t.meta["metric"] == "none"]
    line = next(t for t in _traces(fig, "mean") if t.meta["metric"] == "m")
    _same(list(line.y), [r.mean for r in result.select("a", "m")])
    assert line.customdata[2][0] == "n/a"


def test_unknown_analysis_names_the_available_ones():
    result = _result(_cosine_rows() + _lens_rows())
    with pytest.raises(ValueError, match="unknown analysis 'nope'.*'translation', 'lens'"):
        figure(result, "nope")
    with pytest.raises(ValueError, match="no rows"):
        figure(_result([]), "nope")


def test_scanresult_figure_delegates():
    result = _result(_cosine_rows())
    assert len(result.figure("translation").data) == len(figure(result, "translation").data)


# ---------------------------------------------------------------------------------- HTML


class _Page(HTMLParser):
    """Collects scripts (attributes and bodies), text outside scripts, and every src/href."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.scripts: list[tuple[dict, str]] = []
        self.text: list[str] = []
        self.links: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag == "script":
            self._in_script = True
            self.scripts.append((attrs, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        else:
            self.text.append(data)


def _evil_result():
    rows = _cosine_rows(groups=("en-zh", EVIL)) + _lens_rows()
    provenance = {
        "model": {"name": "tiny", "versions": {"torch": "2.x"}},
        "data": {"name": EVIL, "n_items": 12},
        "layers": LAYERS,
    }
    options = {"translation": {"token_policy": EVIL, "final_norm": False}, "lens": {}}
    examples = {"translation": ["plain", EVIL], "lens": ['中文: "花"']}
    return _result(rows, provenance=provenance, options=options, examples=examples)


def _page(path):
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    page.close()
    return text, page


def test_html_escapes_every_string_from_the_result(tmp_path):
    path = write_html(_evil_result(), tmp_path / "report.html")
    text, page = _page(path)
    assert "<script>alert" not in text.lower()
    assert "</script><script>" not in text.lower()

    # the only scripts: plotly.js, inlined once, then one per figure that calls Plotly.newPlot
    assert len(page.scripts) == 3
    (first_attrs, plotly_js), *figures = page.scripts
    assert "src" not in first_attrs and len(plotly_js) > 1_000_000 and "Plotly" in plotly_js
    for attrs, body in figures:
        assert attrs == {}
        assert "Plotly.newPlot(" in body
        assert "</" not in body and "<!--" not in body  # cannot end its element early
        assert "alert(1)" not in body or "\\u003cscript\\u003e" in body

    # outside scripts the evil strings are plain text: the example, option value, provenance
    # value and group name (results table header) each show up as escaped text
    shown = "".join(page.text)
    assert shown.count(EVIL) >= 4
    assert f"<li>{EVIL}" not in text and f"<td>{EVIL}" not in text
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<li>{escaped}</li>" in text  # example
    assert f"<td>{escaped}</td>" in text  # option value and provenance value
    assert text.count(f"<td>{escaped}</td>") == 2
    assert f"adjusted_cosine · {escaped}<br>" in text  # group name in the table header
    assert "data.name" in shown and "model.versions.torch" in shown  # nested keys flattened


def test_inert_script_bodies_neutralises_a_closing_tag():
    fragment = '<div><script>var a = "</script><script>alert(1)</script>";</script></div>'
    safe = html_page.inert_script_bodies(fragment)
    page = _Page()
    page.feed(safe)
    assert len(page.scripts) == 1 and "alert(1)" in page.scripts[0][1]
    assert safe.endswith(";</script></div>")
    assert "<\\/script>" in safe


def test_html_is_self_contained(tmp_path):
    from plotly.offline import get_plotlyjs

    text, page = _page(write_html(_result(_cosine_rows()), tmp_path / "r.html"))
    assert not [link for link in page.links if re.match(r"\s*(https?:)?//", link)]
    assert not re.search(r"<script[^>]*\bsrc\s*=", text, re.IGNORECASE)
    assert not re.search(r"<link\b", text, re.IGNORECASE)
    assert text.count(get_plotlyjs()[:500]) == 1  # plotly.js inlined exactly once
    assert '<meta charset="utf-8">' in text


def test_html_contents(tmp_path):
    rows = _cosine_rows() + _lens_rows()
    rows.append(Row("lens", 6, "logp_en", "", -2.5, math.nan, math.nan, 40))
    result = _result(
        rows,
        options={"translation": {"pairs": ["en-zh", "en-fr"]}, "extra": {"k": 1}},
        examples={"translation": ["The cat sleeps.", "猫在睡觉。"]},
    )
    text, page = _page(write_html(result, tmp_path / "r.html"))
    shown = "".join(page.text)
    for heading in ("Provenance", "translation", "lens", "extra"):
        assert heading in shown
    assert "model.name" in shown and "tiny" in shown
    assert "en-zh, en-fr" in shown  # list option, joined
    assert "猫在睡觉。" in shown
    assert "No rows for this analysis." in shown  # "extra" has options but no rows
    assert "-0.050 [-0.070, -0.020]" in shown  # layer 0, en-zh: mean [ci_low, ci_high]
    assert "-2.500 [no CI]" in shown
    assert "n = 50" in shown
    assert len(page.scripts) == 1 + 2  # plotly.js and one figure per analysis with rows


def test_write_is_atomic_and_returns_the_path(tmp_path, monkeypatch):
    target = tmp_path / "sub" / "report.html"
    result = _result(_cosine_rows())
    assert write_html(result, target) == target
    assert target.stat().st_mode & 0o444 == 0o444
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]
    before = target.read_text(encoding="utf-8")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_html(_result(_lens_rows()), target)
    assert target.read_text(encoding="utf-8") == before  # the old report is intact
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp file left


def test_scanresult_save_writes_the_report(tmp_path):
    path = _result(_cosine_rows()).save(tmp_path / "out")
    assert path == tmp_path / "out" / "report.html"
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "report.html",
        "result.csv",
        "result.json",
    ]


def _scan_of(data_name: str, model: str = "m", value: float = 0.5) -> ScanResult:
    rows = [Row("similarity", layer, "adjusted_cosine", "en-zh", value + layer, 0.0, 1.0, 4)
            for layer in range(3)]
    provenance = {"model": {"name": model}, "data": {"name": data_name, "hash": data_name * 2},
                  "layers": [0, 1, 2], "batch_size": 8}
    return ScanResult(rows, provenance, {"similarity": {"pairs": ["en-zh"]}},
                      {"similarity": [f"<b>{data_name}</b>"]})


def test_combine_keeps_every_row_under_a_data_prefixed_name(tmp_path):
    a, b = _scan_of("words", value=0.1), _scan_of("sentences", value=0.2)
    both = ScanResult.combine([a, b])
    assert both.analyses == ["words: similarity", "sentences: similarity"]
    assert [r.mean for r in both.select("words: similarity")] == [r.mean for r in a.rows]
    assert [r.mean for r in both.select("sentences: similarity")] == [r.mean for r in b.rows]
    assert both.options["sentences: similarity"] == {"pairs": ["en-zh"]}
    assert both.provenance["data"]["name"] == "words + sentences"
    assert both.provenance["scans"]["sentences"]["data"]["hash"] == "sentencessentences"
    page = write_html(both, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "&lt;b&gt;words&lt;/b&gt;" in page and "<b>words</b>" not in page
    with pytest.raises(ValueError, match="two or more"):
        ScanResult.combine([a])
    with pytest.raises(ValueError, match="different models"):
        ScanResult.combine([a, _scan_of("sentences", model="other")])
    with pytest.raises(ValueError, match="repeat"):
        ScanResult.combine([a, _scan_of("words")])


def test_a_first_layer_far_off_scale_is_zoomed_out_and_said():
    rows = [Row("lens", layer, "logp", "", -170.0 if layer == 0 else -10.0 + layer, -171.0 if
                layer == 0 else -11.0 + layer, -169.0 if layer == 0 else -9.0 + layer, 5)
            for layer in range(6)]
    fig = figure(ScanResult(rows, {}), "lens")
    low, high = fig.layout.yaxis.range
    assert low > -20 and high < 0  # layers 1-5 (-11 .. -4) fill the axis
    assert any("layer 0 off scale" in a.text for a in fig.layout.annotations)
    means = [t for t in fig.data if t.meta and t.meta.get("role") == "mean"][0]
    assert list(means.y)[0] == -170.0  # the value itself is still plotted (hover, table)
    steady = [replace(r, mean=-10.0 + r.layer, ci_low=-11.0 + r.layer, ci_high=-9.0 + r.layer)
              for r in rows]
    assert figure(ScanResult(steady, {}), "lens").layout.yaxis.range is None
