"""Figures and HTML sections for :class:`~hublens.steering.result.SteeringResult`.

:func:`steering_section_html` renders one intervention as a section (options, figure, the
mean ± std table, examples); :func:`add_to_report` puts such sections into a scan's
``report.html``, and :func:`write_steering_html` writes one self-contained page with a section
per intervention. Pages use the one page shell of :mod:`hublens.html_page` (style, head,
figure embedding, escaping) shared with the scan report: every string from a result is
HTML-escaped.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hublens.atomic import write_text_atomic
from hublens.figures import PALETTE
from hublens.html_page import figure_html, kv_table, plain, render_page

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from hublens.steering.result import SteeringResult


def steering_figure(result: SteeringResult) -> go.Figure:
    """One panel per metric: mean over seeds against strength, a line per group, ± std bars.

    Args:
        result: The steering result.

    Returns:
        The plotly figure; traces carry ``meta={"metric": ..., "group": ...}``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    summary = result.summary()
    metrics = result.metrics or list(dict.fromkeys(summary["metric"]))
    metrics = [m for m in metrics if m in set(summary["metric"])]
    groups = list(dict.fromkeys(summary["group"]))
    fig = make_subplots(
        rows=len(metrics) or 1,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        subplot_titles=[plain(m) for m in metrics],
    )
    for p, metric in enumerate(metrics, start=1):
        for g, group in enumerate(groups):
            part = summary[(summary["metric"] == metric) & (summary["group"] == group)]
            if part.empty:
                continue
            std = [0.0 if math.isnan(s) else float(s) for s in part["std"]]
            colour = PALETTE[g % len(PALETTE)]
            fig.add_trace(
                go.Scatter(
                    x=list(part["strength"]),
                    y=list(part["mean"]),
                    error_y={"type": "data", "array": std, "visible": True, "thickness": 1.2},
                    mode="lines+markers",
                    line={"color": colour, "width": 2},
                    name=plain(group or metric),
                    legendgroup=group,
                    showlegend=p == 1,
                    meta={"metric": metric, "group": group},
                ),
                row=p,
                col=1,
            )
        fig.update_yaxes(title_text=plain(metric), row=p, col=1)
    fig.update_xaxes(title_text="strength", row=len(metrics) or 1, col=1)
    fig.update_layout(
        template="simple_white",
        title={"text": f"<b>{plain(result.intervention)}</b>", "x": 0.01},
        height=120 + 230 * max(len(metrics), 1),
        margin={"l": 70, "r": 30, "t": 70, "b": 50},
        font={"family": "Helvetica, Arial, sans-serif", "size": 13, "color": "#222"},
    )
    return fig


def _summary_table(result: SteeringResult) -> str:
    wide = result.wide()
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["group", "strength", *wide.columns])
    body = []
    for (group, strength), row in wide.iterrows():
        cells = [html.escape(str(group)), f"{strength:g}"]
        cells += [html.escape(str(v)) for v in row]
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return (
        f'<div class="scroll"><table class="results"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def steering_section_html(result: SteeringResult, index: int = 0) -> str:
    """One intervention as an HTML section (needs plotly.js loaded on the page).

    Args:
        result: The steering result.
        index: Position of the section on the page (makes element ids unique).

    Returns:
        The HTML fragment, every string from the result escaped.
    """
    safe = re.sub(r"[^A-Za-z0-9_-]+", "_", result.intervention) or "steering"
    parts = [
        f'<h2 id="steering-{index}">Steering: {html.escape(result.intervention)}</h2>',
        "<h3>Provenance</h3>",
        kv_table(result.provenance, "kv"),
        "<h3>Options</h3>",
        kv_table(result.options, "kv"),
    ]
    if result.rows:
        fig = steering_figure(result)
        parts += [
            "<h3>Outcomes against strength (mean ± std over seeds)</h3>",
            f'<div class="figure">{figure_html(fig, f"steer-fig-{index}", safe)}</div>',
            _summary_table(result),
        ]
    else:
        parts.append('<p class="muted">No rows.</p>')
    parts.append("<h3>Examples</h3>")
    if result.examples:
        items = "".join(f"<li>{html.escape(str(e))}</li>" for e in result.examples)
        parts.append(f'<ol class="examples">{items}</ol>')
    else:
        parts.append('<p class="muted">(none recorded)</p>')
    return "\n".join(parts)


def render_steering_html(results: Sequence[SteeringResult], title: str = "Steering") -> str:
    """A self-contained HTML page with one section per steering result."""
    links = "".join(
        f'<li><a href="#steering-{i}">{html.escape(r.intervention)}</a></li>'
        for i, r in enumerate(results)
    )
    sections = [f"<nav><strong>Interventions</strong><ul>{links}</ul></nav>"]
    sections += [steering_section_html(r, i) for i, r in enumerate(results)]
    return render_page(title, sections)


def add_to_report(results: Sequence[SteeringResult], report: str | Path) -> Path:
    """Add steering sections to an existing scan ``report.html`` (before its footer).

    The scan report already inlines plotly.js, so the sections are inserted as they are.
    Sections added earlier are replaced, so running it twice does not duplicate them.

    Args:
        results: The steering results.
        report: A report written by :meth:`hublens.results.ScanResult.save`.

    Returns:
        The report's path.

    Raises:
        ValueError: The file is not a hublens HTML report.
    """
    target = Path(report)
    text = target.read_text(encoding="utf-8")
    start_mark, end_mark = "<!-- steering:start -->", "<!-- steering:end -->"
    if start_mark in text and end_mark in text:
        text = text[: text.index(start_mark)] + text[text.index(end_mark) + len(end_mark) :]
    anchor = text.rfind("<footer>")
    if anchor < 0 or "Plotly" not in text:
        raise ValueError(
            f"report={str(report)!r} is not a hublens scan report (no plotly.js or footer); "
            "write the steering page on its own with write_steering_html instead."
        )
    sections = "\n".join(steering_section_html(r, i) for i, r in enumerate(results))
    text = text[:anchor] + f"{start_mark}\n{sections}\n{end_mark}\n" + text[anchor:]
    write_text_atomic(target, text)
    return target


def write_steering_html(
    results: Sequence[SteeringResult], path: str | Path, title: str = "Steering"
) -> Path:
    """Write :func:`render_steering_html` to ``path`` atomically; return the path."""
    target = Path(path)
    write_text_atomic(target, render_steering_html(results, title))
    return target
