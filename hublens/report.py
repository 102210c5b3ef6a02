"""Figures and a self-contained HTML report for a :class:`~hublens.results.ScanResult`.

:func:`figure` draws one analysis the way the paper does: the mean per layer, one line per
(metric, group), with a translucent band for its 95% confidence interval. :func:`write_html`
writes ONE HTML file (plotly.js inlined once) with the provenance, and per analysis its options,
figure, a compact table of the numbers and the example inputs. Every string that comes from the
result is HTML-escaped, and the figure JSON cannot close its ``<script>`` element.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hublens.atomic import write_text_atomic

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hublens.analyses.base import Row
    from hublens.results import ScanResult

#: Line colours: the Okabe-Ito colour-blind-safe palette (without its yellow), then a few more.
PALETTE = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#8C564B",
    "#7F7F7F",
    "#17BECF",
)
#: Line dashes of the metrics when colours tell the groups apart.
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
#: Metrics whose typical magnitudes differ by more than this factor get their own subplot.
SCALE_RATIO = 4.0
#: Opacity of the confidence bands.
BAND_OPACITY = 0.18
#: Separator between metric and group in labels.
SEP = " · "


# ---------------------------------------------------------------------------------- figures


def label(metric: str, group: str) -> str:
    """The readable label of a (metric, group) line, e.g. ``"adjusted_cosine · en-zh"``."""
    return f"{metric}{SEP}{group}" if group else metric


def _finite(values: Iterable[float]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def _ci_is_finite(row: Row) -> bool:
    return bool(_finite([row.ci_low])) and bool(_finite([row.ci_high]))


def _plain(text: str) -> str:
    """Text that plotly.js shows literally (it reads a few HTML tags and entities in labels)."""
    return html.escape(str(text), quote=False)


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _magnitude(rows: Sequence[Row]) -> float:
    values = _finite(abs(r.mean) for r in rows)
    return max(max(values, default=0.0), 1e-12)


def metric_panels(rows: Sequence[Row]) -> list[list[str]]:
    """Group an analysis's metrics into panels of comparable scale.

    Metrics are sorted by magnitude (largest absolute mean) and cut wherever the next one is
    more than :data:`SCALE_RATIO` times larger than the smallest of the current panel. Panels keep
    the order in which their metrics first appear.

    Args:
        rows: Rows of one analysis.

    Returns:
        Lists of metric names, one per panel; a single panel when all scales are comparable.
    """
    metrics = list(dict.fromkeys(r.metric for r in rows))
    size = {m: _magnitude([r for r in rows if r.metric == m]) for m in metrics}
    panels: list[list[str]] = []
    for metric in sorted(metrics, key=lambda m: size[m]):
        if panels and size[metric] <= SCALE_RATIO * size[panels[-1][0]]:
            panels[-1].append(metric)
        else:
            panels.append([metric])
    order = {m: i for i, m in enumerate(metrics)}
    panels = [sorted(p, key=order.__getitem__) for p in panels]
    return sorted(panels, key=lambda p: order[p[0]])


def _band(rows: Sequence[Row]) -> tuple[list[int | None], list[float | None]]:
    """Closed outline(s) of the CI band, one per run of layers with a finite CI.

    Each run goes along ``ci_high`` by increasing layer and back along ``ci_low``; runs are
    separated by ``None`` (plotly closes each segment of a ``fill="toself"`` trace on its own).
    Layers whose CI is NaN get no band.
    """
    runs: list[list[Row]] = []
    for row in rows:
        if not _ci_is_finite(row):
            runs.append([])
        elif runs and runs[-1]:
            runs[-1].append(row)
        else:
            runs.append([row])
    xs: list[int | None] = []
    ys: list[float | None] = []
    for run in (r for r in runs if r):
        if xs:
            xs.append(None)
            ys.append(None)
        xs += [r.layer for r in run] + [r.layer for r in reversed(run)]
        ys += [r.ci_high for r in run] + [r.ci_low for r in reversed(run)]
    return xs, ys


def _zoomed_range(values: list[float], later: list[float]) -> list[float] | None:
    """A y-range that leaves out the first layer when it alone stretches the axis 4x or more.

    Returns None (plotly's automatic range) unless all values span at least four times the
    range of the later layers' means and CIs (e.g. log-probs of about -170 at layer 0 against
    -20 to 0 after it).
    """
    if not values or len(later) < 2:
        return None
    low, high = min(later), max(later)
    span = max(high - low, 1e-12)
    if max(values) - min(values) < 4 * span:
        return None
    pad = 0.15 * span
    return [low - pad, high + pad]


def _ci_text(row: Row) -> str:
    if not _ci_is_finite(row):
        return "n/a"
    return f"[{row.ci_low:.4g}, {row.ci_high:.4g}]"


def figure(result: ScanResult, name: str) -> go.Figure:
    """Plot one analysis: mean per layer with a translucent 95% CI band per metric and group.

    One line per (metric, group), labelled ``"metric · group"``. Metrics on very different scales
    (log-probabilities next to fractions, say) go to separate subplots that share the layer
    axis. A dashed zero line is drawn in every panel whose values straddle 0.

    Args:
        result: The scan result.
        name: The analysis to draw (one of ``result.analyses``).

    Returns:
        The plotly figure. Trace order per line: the band (if any CI is finite), then the line.
        Band traces have ``meta={"role": "ci", ...}``, line traces ``meta={"role": "mean", ...}``.

    Raises:
        ValueError: If ``name`` is not an analysis of ``result``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if name not in result.analyses:
        available = ", ".join(repr(a) for a in result.analyses) or "(none: the result has no rows)"
        raise ValueError(f"unknown analysis {name!r}; available analyses: {available}.")

    rows = result.select(name)  # sorted by (metric, group, layer)
    in_order = [r for r in result.rows if r.analysis == name]  # the order the analysis chose
    panels = metric_panels(in_order)
    metrics = [m for panel in panels for m in panel]
    groups = list(dict.fromkeys(r.group for r in in_order))
    by_group_colour = len(groups) > 1 and len(metrics) > 1
    layers = sorted({r.layer for r in rows})

    fig = make_subplots(
        rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.09 if len(panels) > 1 else 0
    )
    n_line = 0
    for p, panel in enumerate(panels, start=1):
        panel_values: list[float] = []
        later_values: list[float] = []
        for m_index, metric in enumerate(panel):
            for group in groups:
                line_rows = [r for r in rows if r.metric == metric and r.group == group]
                if not line_rows:
                    continue
                if by_group_colour:
                    colour = PALETTE[groups.index(group) % len(PALETTE)]
                    dash = DASHES[m_index % len(DASHES)]
                else:
                    colour, dash = PALETTE[n_line % len(PALETTE)], "solid"
                n_line += 1
                text = label(metric, group)
                meta = {"metric": metric, "group": group}
                bx, by = _band(line_rows)
                if bx:
                    fig.add_trace(
                        go.Scatter(
                            x=bx,
                            y=by,
                            mode="lines",
                            fill="toself",
                            fillcolor=_rgba(colour, BAND_OPACITY),
                            line={"width": 0, "color": colour},
                            hoverinfo="skip",
                            showlegend=False,
                            legendgroup=text,
                            name=_plain(f"95% CI{SEP}{text}"),
                            meta={"role": "ci", **meta},
                        ),
                        row=p,
                        col=1,
                    )
                fig.add_trace(
                    go.Scatter(
                        x=[r.layer for r in line_rows],
                        y=[r.mean for r in line_rows],
                        mode="lines+markers",
                        line={"color": colour, "width": 2.2, "dash": dash},
                        marker={"size": 5, "color": colour},
                        name=_plain(text),
                        legendgroup=text,
                        customdata=[[_ci_text(r), r.n] for r in line_rows],
                        hovertemplate=(
                            "<b>%{fullData.name}</b><br>layer %{x}<br>mean %{y:.4g}"
                            "<br>95% CI %{customdata[0]}<br>n %{customdata[1]}<extra></extra>"
                        ),
                        meta={"role": "mean", **meta},
                    ),
                    row=p,
                    col=1,
                )
                panel_values += _finite(r.mean for r in line_rows)
                panel_values += _finite(
                    v for r in line_rows if _ci_is_finite(r) for v in (r.ci_low, r.ci_high)
                )
                later = [r for r in line_rows if r.layer != layers[0]]
                later_values += _finite(r.mean for r in later)
                later_values += _finite(
                    v for r in later if _ci_is_finite(r) for v in (r.ci_low, r.ci_high)
                )
        if panel_values and min(panel_values) < 0 < max(panel_values):
            fig.add_hline(y=0, line={"color": "#444", "width": 1.2, "dash": "dash"}, row=p, col=1)
        fig.update_yaxes(title_text=_plain(", ".join(panel)), row=p, col=1)
        y_range = _zoomed_range(panel_values, later_values)
        if y_range is not None:  # the first layer would squash the rest: say so, zoom
            fig.update_yaxes(range=y_range, row=p, col=1)
            fig.add_annotation(
                text=f"layer {layers[0]} off scale (see the table)",
                showarrow=False,
                xref="x domain" if p == 1 else f"x{p} domain",
                yref="y domain" if p == 1 else f"y{p} domain",
                x=0.0,
                y=1.0,
                xanchor="left",
                yanchor="bottom",
                font={"size": 11, "color": "#666"},
            )

    axis_style = {
        "showgrid": True,
        "gridcolor": "#ebebeb",
        "zeroline": False,
        "ticks": "outside",
        "mirror": False,
        "title_font": {"size": 14},
    }
    fig.update_xaxes(**axis_style)
    fig.update_yaxes(**axis_style)
    x_ticks: dict[str, Any] = {"tickmode": "linear", "dtick": 1} if len(layers) <= 24 else {}
    fig.update_xaxes(showticklabels=True, **x_ticks)
    fig.update_xaxes(title_text="layer", row=len(panels), col=1)
    if layers:
        fig.update_xaxes(range=[layers[0] - 0.4, layers[-1] + 0.4])
    fig.update_layout(
        template="simple_white",
        title={"text": f"<b>{_plain(name)}</b>", "x": 0.01, "xanchor": "left"},
        height=140 + 300 * len(panels),
        margin={"l": 70, "r": 30, "t": 60, "b": 60},
        font={"family": "Helvetica, Arial, sans-serif", "size": 13, "color": "#222"},
        hovermode="closest",
        legend={
            "orientation": "v",
            "x": 1.01,
            "xanchor": "left",
            "y": 1,
            "yanchor": "top",
            "bgcolor": "rgba(255,255,255,0.85)",
            "font": {"size": 12},
        },
        showlegend=True,
    )
    return fig


# ------------------------------------------------------------------------------------ HTML


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dictionaries become dotted keys: ``{"model": {"name": x}}`` -> ``model.name``."""
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            items += _flatten(value, full)
        else:
            items.append((full, value))
    return items


def _value_text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (str, int, float, bool)) or v is None for v in value):
            return ", ".join(_value_text(v) for v in value) if value else "(empty)"
        return repr(list(value))
    if isinstance(value, Mapping) and not value:
        return "(empty)"
    return str(value)


def _kv_table(mapping: Mapping[str, Any], css: str) -> str:
    items = _flatten(mapping)
    if not items:
        return '<p class="muted">(none)</p>'
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_value_text(v))}</td></tr>"
        for k, v in items
    )
    return f'<table class="{css}"><tbody>{body}</tbody></table>'


def _decimals(values: Sequence[float]) -> int:
    size = max((abs(v) for v in _finite(values)), default=0.0)
    return 3 if size < 10 else 2 if size < 100 else 1


def _results_table(rows: Sequence[Row]) -> str:
    """Layer × (metric, group) table of means with their CIs, rounded per column."""
    keys = list(dict.fromkeys((r.metric, r.group) for r in rows))
    layers = sorted({r.layer for r in rows})
    cell = {(r.layer, r.metric, r.group): r for r in rows}
    head = ['<th class="layer">layer</th>']
    digits = {}
    for key in keys:
        column = [r for r in rows if (r.metric, r.group) == key]
        digits[key] = _decimals([v for r in column for v in (r.mean, r.ci_low, r.ci_high)])
        ns = sorted({r.n for r in column})
        n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
        head.append(f'<th>{html.escape(label(*key))}<br><span class="muted">{n_text}</span></th>')
    body = []
    for layer in layers:
        tds = [f'<th class="layer">{layer}</th>']
        for key in keys:
            row = cell.get((layer, *key))
            if row is None:
                tds.append('<td class="muted">—</td>')
                continue
            d = digits[key]
            mean = "NaN" if not _finite([row.mean]) else f"{row.mean:.{d}f}"
            ci = f"[{row.ci_low:.{d}f}, {row.ci_high:.{d}f}]" if _ci_is_finite(row) else "[no CI]"
            tds.append(
                f'<td title="n = {row.n}"><span class="mean">{mean}</span> '
                f'<span class="ci">{ci}</span></td>'
            )
        body.append(f"<tr>{''.join(tds)}</tr>")
    return (
        '<div class="scroll"><table class="results"><thead><tr>'
        + "".join(head)
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table></div>"
    )


_SCRIPT_OPEN = re.compile(r"<script\b[^>]*>", re.IGNORECASE)


def _inert_script_bodies(fragment: str) -> str:
    r"""Make sure nothing inside the fragment's ``<script>`` bodies can end the element early.

    plotly already writes ``<``, ``>`` and ``/`` in its JSON as ``\u003c`` etc.; as a second
    line of defence, ``</`` and ``<!--`` inside each body (from its opening tag to the LAST
    ``</script>`` of the fragment, which plotly emits itself) are rewritten as ``<\/`` and
    ``<\!--``, which JavaScript reads as the same characters.
    """
    match = _SCRIPT_OPEN.search(fragment)
    end = fragment.lower().rfind("</script>")
    if match is None or end < match.end():
        return fragment
    body = fragment[match.end() : end].replace("</", "<\\/").replace("<!--", "<\\!--")
    return fragment[: match.end()] + body + fragment[end:]


def figure_html(fig: go.Figure, div_id: str, filename: str = "figure") -> str:
    """One figure as an HTML fragment that needs plotly.js already loaded on the page.

    Args:
        fig: The figure.
        div_id: The id of its ``<div>`` (letters, digits, ``-`` and ``_`` only).
        filename: Base name for the figure's "download" button.

    Returns:
        A ``<div>`` with the figure and the ``<script>`` that draws it.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", div_id):
        raise ValueError(f"div_id={div_id!r}: use letters, digits, '-' and '_' only.")
    fragment = fig.to_html(
        full_html=False,
        include_plotlyjs=False,
        div_id=div_id,
        config={
            "responsive": True,
            "displaylogo": False,
            "toImageButtonOptions": {"format": "svg", "filename": filename},
        },
    )
    return _inert_script_bodies(fragment)


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, "Noto Sans CJK SC",
       "Microsoft YaHei", "PingFang SC", sans-serif; color: #222;
       margin: 0; background: #fafafa; line-height: 1.45; }
main { max-width: 1200px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 1.7em; margin: 0.2em 0 0.1em; }
h2 { font-size: 1.35em; margin-top: 2.2em; padding-top: 0.6em; border-top: 2px solid #ddd; }
h3 { font-size: 1.05em; margin: 1.4em 0 0.4em; color: #444; }
.subtitle { color: #666; margin: 0 0 1em; }
.muted { color: #888; font-weight: normal; }
table { border-collapse: collapse; font-size: 0.88em; }
table.kv th { text-align: left; padding: 3px 16px 3px 0; color: #555; font-weight: 600;
              white-space: nowrap; vertical-align: top; }
table.kv td { padding: 3px 0; font-family: ui-monospace, Menlo, Consolas, monospace;
              word-break: break-all; }
table.kv tr + tr { border-top: 1px solid #f0f0f0; }
.scroll { overflow-x: auto; max-height: 420px; overflow-y: auto; border: 1px solid #e5e5e5; }
table.results th, table.results td { padding: 3px 10px; text-align: right; white-space: nowrap; }
table.results thead th { position: sticky; top: 0; background: #f4f4f4; border-bottom: 1px solid
                         #ccc; vertical-align: bottom; }
table.results th.layer { text-align: center; background: #f4f4f4; }
table.results tbody tr:nth-child(even) td { background: #fafafa; }
table.results .mean { font-variant-numeric: tabular-nums; font-weight: 600; }
table.results .ci { font-variant-numeric: tabular-nums; color: #888; font-size: 0.9em; }
ol.examples li { white-space: pre-wrap; font-family: ui-monospace, Menlo, Consolas, monospace;
                 font-size: 0.88em; margin: 2px 0; }
nav ul { margin: 0.2em 0; padding-left: 1.2em; }
.figure { margin: 0.6em 0; }
footer { margin-top: 3em; color: #888; font-size: 0.85em; }
"""


def _title(result: ScanResult) -> str:
    model = result.provenance.get("model")
    if isinstance(model, Mapping):
        model = model.get("name")
    data = result.provenance.get("data")
    if isinstance(data, Mapping):
        data = data.get("name")
    parts = [str(p) for p in (model, data) if p not in (None, "")]
    return " on ".join(parts)


def render_html(result: ScanResult, title: str = "Semantic hub scan") -> str:
    """The whole report as one self-contained HTML document (see :func:`write_html`).

    Args:
        result: The scan result.
        title: The page heading.

    Returns:
        The HTML text.
    """
    from plotly.offline import get_plotlyjs

    from hublens._version import __version__

    plotly_js = get_plotlyjs()
    if "</script" in plotly_js.lower():  # pragma: no cover - plotly.js never contains it
        raise RuntimeError("the bundled plotly.js contains '</script'; cannot inline it safely.")

    names = list(result.analyses)
    names += [n for n in list(result.options) + list(result.examples) if n not in names]
    names = list(dict.fromkeys(names))
    subtitle = _title(result)

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}{html.escape(' — ' + subtitle) if subtitle else ''}</title>",
        f"<style>{_CSS}</style>",
        f'<script type="text/javascript">{plotly_js}</script>',
        "</head><body><main>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="subtitle">{html.escape(subtitle)}</p>')
    if names:
        links = "".join(
            f'<li><a href="#analysis-{i}">{html.escape(n)}</a></li>' for i, n in enumerate(names)
        )
        parts.append(f"<nav><strong>Analyses</strong><ul>{links}</ul></nav>")
    parts += ["<h2>Provenance</h2>", _kv_table(result.provenance, "kv")]

    for i, name in enumerate(names):
        parts.append(f'<h2 id="analysis-{i}">{html.escape(name)}</h2>')
        parts += ["<h3>Options</h3>", _kv_table(result.options.get(name, {}), "kv")]
        rows = [r for r in result.rows if r.analysis == name]
        if rows:
            fig = figure(result, name)
            safe_name = re.sub(r"[^A-Za-z0-9_-]+", "_", name) or "figure"
            parts += [
                "<h3>Per layer (mean, 95% CI band)</h3>",
                f'<div class="figure">{figure_html(fig, f"fig-{i}", safe_name)}</div>',
                '<h3>Results <span class="muted">(mean [95% CI] per layer)</span></h3>',
                _results_table(rows),
            ]
        else:
            parts.append('<p class="muted">No rows for this analysis.</p>')
        examples = result.examples.get(name, [])
        parts.append("<h3>Examples</h3>")
        if examples:
            items = "".join(f"<li>{html.escape(str(e))}</li>" for e in examples)
            parts.append(f'<ol class="examples">{items}</ol>')
        else:
            parts.append('<p class="muted">(none recorded)</p>')

    parts += [
        f"<footer>Written by hublens {html.escape(__version__)}. Self-contained: plotly.js is "
        "inlined, nothing is fetched from the network.</footer>",
        "</main></body></html>",
    ]
    return "\n".join(parts)


def write_html(result: ScanResult, path: str | Path, title: str = "Semantic hub scan") -> Path:
    """Write the report as ONE self-contained HTML file, atomically.

    The file holds a title, the provenance (nested keys flattened), and per analysis its
    options, its figure, a compact results table (layer × metric/group, mean [95% CI]) and its
    example inputs. plotly.js is inlined once; nothing is fetched when the file is opened. Every
    string from the result is HTML-escaped, and figure JSON cannot close its ``<script>``.

    Args:
        result: The scan result.
        path: Where to write (parent folders are created).
        title: The page heading.

    Returns:
        The path written.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, render_html(result, title))
    return target
