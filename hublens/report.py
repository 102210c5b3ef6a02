"""The self-contained HTML report of a :class:`~hublens.results.ScanResult`.

:func:`write_html` writes ONE HTML file (the shared page shell of :mod:`hublens.html_page`,
plotly.js inlined once) with the provenance, and per analysis its options, figure
(:mod:`hublens.figures`), a compact table of the numbers and the example inputs. Every string
that comes from the result is HTML-escaped, and the figure JSON cannot close its ``<script>``.
``figure`` and ``metric_panels`` are re-exported here for the report's callers.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hublens.atomic import write_text_atomic
from hublens.figures import ci_is_finite, figure, finite, label, metric_panels
from hublens.html_page import figure_html, kv_table, render_page

if TYPE_CHECKING:
    from hublens.analysis import Row
    from hublens.results import ScanResult

__all__ = ["figure", "metric_panels", "render_html", "write_html"]


def _decimals(values: Sequence[float]) -> int:
    size = max((abs(v) for v in finite(values)), default=0.0)
    return 3 if size < 10 else 2 if size < 100 else 1


def _results_table(rows: Sequence[Row]) -> str:
    """Layer × (metric, group[, lens]) table of means with their CIs, rounded per column."""
    keys = list(dict.fromkeys((r.metric, r.group, r.lens) for r in rows))
    overlay = len({key[2] for key in keys}) > 1  # several lenses: the lens names its column
    layers = sorted({r.layer for r in rows})
    cell = {(r.layer, r.metric, r.group, r.lens): r for r in rows}
    head = ['<th class="layer">layer</th>']
    digits = {}
    for key in keys:
        column = [r for r in rows if (r.metric, r.group, r.lens) == key]
        digits[key] = _decimals([v for r in column for v in (r.mean, r.ci_low, r.ci_high)])
        ns = sorted({r.n for r in column})
        n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]}"
        text = label(key[0], key[1], key[2] if overlay else "")
        head.append(f'<th>{html.escape(text)}<br><span class="muted">{n_text}</span></th>')
    body = []
    for layer in layers:
        tds = [f'<th class="layer">{layer}</th>']
        for key in keys:
            row = cell.get((layer, *key))
            if row is None:
                tds.append('<td class="muted">—</td>')
                continue
            d = digits[key]
            mean = "NaN" if not finite([row.mean]) else f"{row.mean:.{d}f}"
            ci = f"[{row.ci_low:.{d}f}, {row.ci_high:.{d}f}]" if ci_is_finite(row) else "[no CI]"
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
    names = list(result.analyses)
    names += [n for n in list(result.options) + list(result.examples) if n not in names]
    names = list(dict.fromkeys(names))
    subtitle = _title(result)

    parts: list[str] = []
    if subtitle:
        parts.append(f'<p class="subtitle">{html.escape(subtitle)}</p>')
    grids = result.extras.get("lens_grids") or []
    if names or grids:
        links = "".join(
            f'<li><a href="#analysis-{i}">{html.escape(n)}</a></li>' for i, n in enumerate(names)
        )
        links += '<li><a href="#lens-grids">Token × layer lens view</a></li>' if grids else ""
        parts.append(f"<nav><strong>Analyses</strong><ul>{links}</ul></nav>")
    parts.append(
        '<p class="muted">Methods: every option of each analysis against the source papers\' '
        "code (the semantic hub paper, Wendler et al.) and why hublens's default differs, and "
        "the <code>method=</code> presets: <code>docs/methods.md</code> in the hublens source "
        "(the method each analysis followed is in its options below).</p>"
    )
    parts += ["<h2>Provenance</h2>", kv_table(result.provenance, "kv")]

    for i, name in enumerate(names):
        parts.append(f'<h2 id="analysis-{i}">{html.escape(name)}</h2>')
        parts += ["<h3>Options</h3>", kv_table(result.options.get(name, {}), "kv")]
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

    if grids:
        from hublens.views.lens_grid import grids_section

        parts += grids_section(grids)
    page_title = title + (" — " + subtitle if subtitle else "")
    return render_page(title, parts, page_title=page_title)


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
