"""The reproduce report: one HTML page with the claim table, the rules, figures and timings."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from hublens.html_page import kv_table, render_page
from hublens.reproduce.claims import CLAIMS, MIDDLE, middle_layers

if TYPE_CHECKING:
    from hublens.reproduce.run import Reproduction

#: Cell colours of the verdicts.
COLOURS = {
    "reproduced": "#d8f0dc",
    "not reproduced": "#f8dcd6",
    "not applicable": "#eeeeee",
    "not measured": "#fff3cd",
}


_STYLE = (
    "<style>table.claims { width: 100%; } table.claims th { text-align: left; padding: 4px 8px; "
    "border-bottom: 1px solid #ccc; } table.claims td { padding: 5px 8px; vertical-align: top; "
    "border-top: 1px solid #eee; } table.claims td:nth-child(3) { white-space: nowrap; }</style>"
)


def _table(result: Reproduction) -> str:
    head = (
        "<tr><th>paper's claim</th><th>measured on this model</th><th>verdict</th>"
        "<th>rule</th></tr>"
    )
    body = []
    for claim in CLAIMS:
        v = result.verdicts[claim.key]
        body.append(
            "<tr>"
            f'<td><span class="muted">{html.escape(claim.section)}</span><br>'
            f"{html.escape(claim.claim)}</td>"
            f"<td>{html.escape(v.measured)}</td>"
            f'<td style="background:{COLOURS[v.verdict]}"><strong>{html.escape(v.verdict)}'
            "</strong></td>"
            f'<td class="muted">{html.escape(claim.rule)}</td>'
            "</tr>"
        )
    return (
        _STYLE + '<table class="claims"><thead>' + head + "</thead><tbody>"
        + "".join(body) + "</tbody></table>"
    )  # fmt: skip


def render(result: Reproduction) -> str:
    """The whole report as one self-contained HTML document."""
    counts: dict[str, int] = {}
    for v in result.verdicts.values():
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    summary = ", ".join(f"{n} {name}" for name, n in counts.items())
    mids = middle_layers(result.n_layers)
    parts = [
        f'<p class="subtitle">{html.escape(str(result.model.get("name", "")))} · size '
        f"{html.escape(result.size)} · {html.escape(summary)}</p>",
        "<h2>Claims</h2>",
        f'<p class="muted">Middle layers {MIDDLE.removeprefix("at middle layers ")}: '
        f"{mids[0]}–{mids[-1]} of "
        f"{result.n_layers}. Each verdict follows from the numbers beside it by the rule in the "
        "last column (hublens/reproduce/claims.py). 'Not applicable': the model cannot take "
        "the input, or reproduce does not run that experiment.</p>",
        _table(result),
        "<h2>Timings (wall seconds)</h2>",
        kv_table(result.seconds, "kv"),
        "<h2>Model</h2>",
        kv_table(result.model, "kv"),
    ]
    figure = result.extras.get("trajectory_figure")
    if figure:
        import plotly.io as pio

        from hublens.html_page import figure_html

        parts += [
            "<h2>Arithmetic trajectories</h2>",
            figure_html(pio.from_json(figure), "trajectories", "trajectories"),
        ]
    grids = result.extras.get("lens_grids") or []
    if grids:
        from hublens.views.lens_grid import grids_section

        parts += grids_section(grids)
    return render_page("Semantic hub: reproduction", parts)
