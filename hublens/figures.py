"""Per-layer figures of a :class:`~hublens.results.ScanResult` (plotly), as the paper draws them.

:func:`figure` draws one analysis: the mean per layer, one line per (metric, group), with a
translucent band for its 95% confidence interval; metrics on very different scales get their own
panels (:func:`metric_panels`). Rows read through several lenses (``Row.lens``) are overlaid:
one colour per (metric, group), one line style per lens, the lens name in the legend. Labels
go through :func:`hublens.html_page.plain`, so plotly
shows them literally. :data:`PALETTE` is shared with the steering figures.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from hublens.html_page import plain

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hublens.analysis import Row
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


def label(metric: str, group: str, lens: str = "") -> str:
    """The label of a line, e.g. ``"adjusted_cosine · en-zh"`` or ``"p_en · zh · tuned"``."""
    return SEP.join(part for part in (metric, group, lens) if part)


def finite(values: Iterable[float]) -> list[float]:
    """The finite values of ``values`` as floats (None, NaN and infinities dropped)."""
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def ci_is_finite(row: Row) -> bool:
    """Whether both ends of the row's confidence interval are finite."""
    return bool(finite([row.ci_low])) and bool(finite([row.ci_high]))


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _magnitude(rows: Sequence[Row]) -> float:
    values = finite(abs(r.mean) for r in rows)
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
        if not ci_is_finite(row):
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
    if not ci_is_finite(row):
        return "n/a"
    return f"[{row.ci_low:.4g}, {row.ci_high:.4g}]"


def _title(name: str, lenses: Sequence[str]) -> str:
    """The figure title; with several lenses, which line style each lens has."""
    text = f"<b>{plain(name)}</b>"
    if lenses:
        styles = ", ".join(
            f"{plain(lens)} ({DASHES[i % len(DASHES)]})" for i, lens in enumerate(lenses)
        )
        text += f"<br><span style='font-size:12px'>lenses: {styles}</span>"
    return text


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
    lenses = list(dict.fromkeys(r.lens for r in in_order))
    overlay = len(lenses) > 1  # one colour per (metric, group), one dash per lens
    by_group_colour = len(groups) > 1 and len(metrics) > 1 and not overlay
    layers = sorted({r.layer for r in rows})

    fig = make_subplots(
        rows=len(panels), cols=1, shared_xaxes=True, vertical_spacing=0.09 if len(panels) > 1 else 0
    )
    n_line = 0
    colour_of: dict[tuple[str, str], str] = {}  # overlay: the lenses of a line share a colour
    for p, panel in enumerate(panels, start=1):
        panel_values: list[float] = []
        later_values: list[float] = []
        for m_index, metric in enumerate(panel):
            for group, lens in [(g, n) for g in groups for n in lenses]:
                line_rows = [
                    r for r in rows if r.metric == metric and r.group == group and r.lens == lens
                ]
                if not line_rows:
                    continue
                if overlay:
                    colour = colour_of.setdefault(
                        (metric, group), PALETTE[len(colour_of) % len(PALETTE)]
                    )
                    dash = DASHES[lenses.index(lens) % len(DASHES)]
                elif by_group_colour:
                    colour = PALETTE[groups.index(group) % len(PALETTE)]
                    dash = DASHES[m_index % len(DASHES)]
                else:
                    colour, dash = PALETTE[n_line % len(PALETTE)], "solid"
                n_line += 1
                text = label(metric, group, lens if overlay else "")
                meta = {"metric": metric, "group": group, **({"lens": lens} if overlay else {})}
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
                            name=plain(f"95% CI{SEP}{text}"),
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
                        name=plain(text),
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
                panel_values += finite(r.mean for r in line_rows)
                panel_values += finite(
                    v for r in line_rows if ci_is_finite(r) for v in (r.ci_low, r.ci_high)
                )
                later = [r for r in line_rows if r.layer != layers[0]]
                later_values += finite(r.mean for r in later)
                later_values += finite(
                    v for r in later if ci_is_finite(r) for v in (r.ci_low, r.ci_high)
                )
        if panel_values and min(panel_values) < 0 < max(panel_values):
            fig.add_hline(y=0, line={"color": "#444", "width": 1.2, "dash": "dash"}, row=p, col=1)
        fig.update_yaxes(title_text=plain(", ".join(panel)), row=p, col=1)
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
        title={"text": _title(name, lenses if overlay else []), "x": 0.01, "xanchor": "left"},
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
