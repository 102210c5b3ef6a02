"""The one HTML page shell of hublens's reports (scan and steering): style, head, escaping.

Every report page is :func:`render_page`: a self-contained document with the shared style sheet
(:data:`CSS`), plotly.js inlined once (nothing is fetched when the page is opened), a title and
a footer. The helpers here are the only way report text reaches HTML: :func:`plain` for plotly
labels, :func:`kv_table` for nested key/value facts (keys and values escaped), and
:func:`figure_html` for a figure, whose JSON cannot close its ``<script>`` element.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import plotly.graph_objects as go


def plain(text: str) -> str:
    """Text that plotly.js shows literally (it reads a few HTML tags and entities in labels)."""
    return html.escape(str(text), quote=False)


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dictionaries become dotted keys: ``{"model": {"name": x}}`` -> ``model.name``."""
    items: list[tuple[str, Any]] = []
    for key, value in mapping.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            items += flatten(value, full)
        else:
            items.append((full, value))
    return items


def value_text(value: Any) -> str:
    """A readable, NOT yet escaped text of one option or provenance value."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, (str, int, float, bool)) or v is None for v in value):
            return ", ".join(value_text(v) for v in value) if value else "(empty)"
        return repr(list(value))
    if isinstance(value, Mapping) and not value:
        return "(empty)"
    return str(value)


def kv_table(mapping: Mapping[str, Any], css: str) -> str:
    """A two-column table of the (flattened) mapping; keys and values are escaped."""
    items = flatten(mapping)
    if not items:
        return '<p class="muted">(none)</p>'
    body = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(value_text(v))}</td></tr>" for k, v in items
    )
    return f'<table class="{css}"><tbody>{body}</tbody></table>'


_SCRIPT_OPEN = re.compile(r"<script\b[^>]*>", re.IGNORECASE)


def inert_script_bodies(fragment: str) -> str:
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
    return inert_script_bodies(fragment)


CSS = """
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


def render_page(title: str, sections: Sequence[str], *, page_title: str | None = None) -> str:
    """A self-contained HTML document: head (style, plotly.js), ``<h1>``, sections, footer.

    Args:
        title: The page heading (escaped here).
        sections: HTML fragments, already escaped by their builders, in order.
        page_title: The browser tab's title, if not ``title`` (escaped here).

    Returns:
        The HTML text.
    """
    from plotly.offline import get_plotlyjs

    from hublens._version import __version__

    plotly_js = get_plotlyjs()
    if "</script" in plotly_js.lower():  # pragma: no cover - plotly.js never contains it
        raise RuntimeError("the bundled plotly.js contains '</script'; cannot inline it safely.")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(page_title if page_title is not None else title)}</title>",
            f"<style>{CSS}</style>",
            f'<script type="text/javascript">{plotly_js}</script>',
            "</head><body><main>",
            f"<h1>{html.escape(title)}</h1>",
            *sections,
            f"<footer>Written by hublens {html.escape(__version__)}. Self-contained: plotly.js is "
            "inlined, nothing is fetched from the network.</footer>",
            "</main></body></html>",
        ]
    )
