"""The token x layer lens grid (the semantic hub paper's Fig. 1, Wendler et al.'s pictures).

For one text, every input position and every (or every other) layer: the lens's top-1 next
token, its probability (the cell colour), the top-k with log-probs (the hover), and marks for
cells whose top-1 token is in a caller's token set (target language, dominant language).

The lens is a parameter (any :class:`hublens.hooks.Lens`; default the logit lens with the final
norm), read with ``layer=`` so the last-layer rule and per-layer transforms apply. One forward
pass, stopped after the last layer read; the readout is one batched call over every row.

Example:
    >>> marks = script_marks(model, "zh")  # doctest: +SKIP
    >>> grid = lens_grid(model, "猫在温暖的垫子上睡觉。", marks=marks)  # doctest: +SKIP
    >>> write_grid_html(grid, "grid.html")  # doctest: +SKIP
"""

from __future__ import annotations

import html
import math
from collections.abc import Container, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hublens.atomic import write_text_atomic
from hublens.hooks import ActivationStore, AllPositions, capture_hooks, forward_until, hook_name
from hublens.hooks.lens import Lens, LogitLens
from hublens.hooks.names import validate_layers
from hublens.html_page import figure_html, plain, render_page

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Models deeper than this get every other layer by default (the last layer always included).
DEEP_MODEL_LAYERS = 24
#: Colours of the marks, in the order the marks are given.
MARK_COLOURS = ("#D55E00", "#0072B2", "#009E73", "#CC79A7")


@dataclass(frozen=True)
class LensGrid:
    """Top lens tokens of one text at every (layer, position) read; JSON-ready.

    Attributes:
        text: The text.
        tokens: The input token at each position shown (decoded).
        positions: Their indices in the tokenized row (BOS is position 0 when prepended).
        layers: Layers read, in order (the grid's rows).
        top_ids: ``[layer][position]`` the top-1 lens token id.
        top_tokens: ``[layer][position]`` that token as text.
        probs: ``[layer][position]`` its probability.
        topk_tokens: ``[layer][position][k]`` the top-k tokens.
        topk_logprobs: ``[layer][position][k]`` their log-probs.
        marks: Mark name -> ``[layer][position]`` whether the top-1 id is in the mark's set.
        lens: A description of the lens (its ``repr``).
        label: A short caption (e.g. the data set and type), may be empty.
    """

    text: str
    tokens: list[str]
    positions: list[int]
    layers: list[int]
    top_ids: list[list[int]]
    top_tokens: list[list[str]]
    probs: list[list[float]]
    topk_tokens: list[list[list[str]]]
    topk_logprobs: list[list[list[float]]]
    marks: dict[str, list[list[bool]]] = field(default_factory=dict)
    lens: str = ""
    label: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> LensGrid:
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(payload))

    def mark_share(self, name: str) -> list[float]:
        """Per layer, the share of positions whose top-1 token carries mark ``name``."""
        return [sum(row) / len(row) if row else 0.0 for row in self.marks[name]]


def default_grid_layers(n_layers: int) -> list[int]:
    """Every layer, or every other one (ending at the last) past :data:`DEEP_MODEL_LAYERS`."""
    if n_layers <= DEEP_MODEL_LAYERS:
        return list(range(n_layers))
    return sorted(set(range(n_layers - 1, -1, -2)))


def _decode(tokenizer: Any, token_id: int) -> str:
    return str(tokenizer.decode([int(token_id)]))


@torch.no_grad()
def lens_grid(
    model: Any,
    text: str,
    *,
    lens: Lens | None = None,
    layers: int | Iterable[int] | None = None,
    top_k: int = 5,
    marks: Mapping[str, Container[int]] | None = None,
    include_bos: bool = False,
    max_tokens: int = 64,
    label: str = "",
) -> LensGrid:
    """Read the top lens tokens of ``text`` at every position and layer.

    Args:
        model: A HubModel.
        text: The text (it is tokenized with the model's BOS policy).
        lens: The lens; None: ``LogitLens.from_model(model, final_norm=True)``.
        layers: Layers to read; None: every layer, every other one past 24 layers.
        top_k: Tokens kept per cell for the hover (at least 1).
        marks: Mark name -> token ids (any container) marking top-1 tokens, e.g.
            :func:`hublens.views.script_marks`.
        include_bos: Show the BOS position too (its states are rarely informative).
        max_tokens: Longest text allowed, in tokens (a grid is for reading, not for corpora).
        label: A caption stored with the grid.

    Returns:
        The grid.

    Raises:
        ValueError: Empty text, ``top_k < 1``, bad layers, or a text over ``max_tokens``
            (all before any forward pass).
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"text={text!r}: pass a non-empty string.")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k={top_k!r}: pass a positive integer (5 shows the top-5).")
    chosen = (
        default_grid_layers(int(model.n_layers))
        if layers is None
        else validate_layers(model, layers)
    )
    batch = model.tokenize(text, max_tokens=max_tokens)
    lens = LogitLens.from_model(model, final_norm=True) if lens is None else lens
    store = ActivationStore()
    hooks = capture_hooks(model, store, layers=chosen, where=AllPositions())
    with model.hooks(fwd_hooks=hooks):
        forward_until(model, batch.ids, max(chosen) + 1, attention_mask=batch.attention_mask)
    ids = [int(i) for i in batch.ids[0, : int(batch.lengths[0])]]
    start = 1 if model.prepend_bos and not include_bos and len(ids) > 1 else 0
    hidden = store.stack([hook_name(layer) for layer in chosen])[:, 0, start:]  # (layer, pos, d)
    out = lens.readout(hidden.float(), top_k=top_k, layer=chosen)
    top_ids = out.top_ids.cpu().tolist()
    top_lp = out.top_logprobs.cpu().tolist()
    tok = model.tokenizer
    cache: dict[int, str] = {}

    def text_of(i: int) -> str:
        if i not in cache:
            cache[i] = _decode(tok, i)
        return cache[i]

    grid_marks = {
        name: [[row[p][0] in ids_set for p in range(len(row))] for row in top_ids]
        for name, ids_set in (marks or {}).items()
    }
    return LensGrid(
        text=text,
        tokens=[text_of(i) for i in ids[start:]],
        positions=list(range(start, len(ids))),
        layers=list(chosen),
        top_ids=[[cell[0] for cell in row] for row in top_ids],
        top_tokens=[[text_of(cell[0]) for cell in row] for row in top_ids],
        probs=[[math.exp(cell[0]) for cell in row] for row in top_lp],
        topk_tokens=[[[text_of(i) for i in cell] for cell in row] for row in top_ids],
        topk_logprobs=[[[round(v, 4) for v in cell] for cell in row] for row in top_lp],
        marks=grid_marks,
        lens=repr(lens),
        label=label,
    )


def _shown(token: str, width: int = 8) -> str:
    """A token as a cell label: whitespace made visible, long tokens cut."""
    text = token.replace(" ", "·").replace("\n", "↵").replace("\t", "→")
    return text if len(text) <= width else text[: width - 1] + "…"


def grid_figure(grid: LensGrid) -> go.Figure:
    """A plotly heatmap of the grid: colour = top-1 probability, text = top-1 token.

    Rows are layers (the first at the bottom), columns input positions (labelled with the input
    token). Hover shows the input token, the layer and the top-k with log-probs. Marked cells
    get an outlined square per mark (legend). Every label goes through
    :func:`hublens.html_page.plain`, so plotly shows tokens such as ``<b>`` literally.
    """
    import plotly.graph_objects as go

    n_pos = len(grid.tokens)
    xs = list(range(n_pos))
    hover = [
        [
            "<br>".join(
                [
                    f"input: {plain(repr(grid.tokens[p]))} (pos {grid.positions[p]})",
                    f"layer {layer}",
                ]
                + [
                    f"{plain(repr(t))}  {lp:.3f}"
                    for t, lp in zip(grid.topk_tokens[r][p], grid.topk_logprobs[r][p], strict=True)
                ]
            )
            for p in range(n_pos)
        ]
        for r, layer in enumerate(grid.layers)
    ]
    fig = go.Figure(
        go.Heatmap(
            z=grid.probs,
            x=xs,
            y=list(range(len(grid.layers))),
            text=[[plain(_shown(t)) for t in row] for row in grid.top_tokens],
            texttemplate="%{text}",
            textfont={"size": 10},
            customdata=hover,
            hovertemplate="%{customdata}<br>p(top-1) = %{z:.3f}<extra></extra>",
            colorscale="Blues",
            zmin=0.0,
            zmax=1.0,
            colorbar={"title": {"text": "p(top-1)"}},
            xgap=1,
            ygap=1,
        )
    )
    for k, (name, cells) in enumerate(grid.marks.items()):
        points = [(p, r) for r, row in enumerate(cells) for p, on in enumerate(row) if on]
        fig.add_trace(
            go.Scatter(
                x=[p for p, _ in points],
                y=[r for _, r in points],
                mode="markers",
                marker={
                    "symbol": "square-open",
                    "size": 22 - 5 * k,
                    "color": MARK_COLOURS[k % len(MARK_COLOURS)],
                    "line": {"width": 2},
                },
                name=plain(f"{name} ({len(points)})"),
                hoverinfo="skip",
            )
        )
    title = grid.label or grid.text
    fig.update_layout(
        template="simple_white",
        title={
            "text": plain(title if len(title) <= 90 else title[:89] + "…"),
            "font": {"size": 14},
        },
        font={"family": "Helvetica, Arial, sans-serif", "size": 12, "color": "#222"},
        height=max(320, 26 * len(grid.layers) + 160),
        margin={"l": 60, "r": 20, "t": 60, "b": 90},
        legend={"orientation": "h", "y": -0.18 - 0.02 * (n_pos > 20)},
        xaxis={
            "tickmode": "array",
            "tickvals": xs,
            "ticktext": [plain(_shown(t, 10)) for t in grid.tokens],
            "tickangle": -45,
            "title": "input token (the lens predicts the NEXT token)",
        },
        yaxis={
            "tickmode": "array",
            "tickvals": list(range(len(grid.layers))),
            "ticktext": [str(layer) for layer in grid.layers],
            "title": "layer",
        },
    )
    return fig


def grid_html(grid: LensGrid, div_id: str) -> str:
    """The grid as an HTML fragment: caption (escaped), the figure, the lens used."""
    caption = f'<p class="muted">{html.escape(grid.label)}</p>' if grid.label else ""
    text = f"<p><code>{html.escape(grid.text)}</code></p>"
    lens = f'<p class="muted">lens: {html.escape(grid.lens)}</p>'
    figure = f'<div class="figure">{figure_html(grid_figure(grid), div_id, "lens_grid")}</div>'
    return caption + text + figure + lens


def write_grid_html(grid: LensGrid, path: str | Path, title: str = "Token x layer lens") -> Path:
    """Write one self-contained HTML page with the grid, atomically; returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(target, render_page(title, [grid_html(grid, "lens-grid")]))
    return target


def grids_section(payloads: list[dict[str, Any]]) -> list[str]:
    """The scan report's "Token x layer lens view" section, from stored grid payloads."""
    parts = [
        '<h2 id="lens-grids">Token × layer lens view</h2>',
        '<p class="muted">Top-1 lens token at every input position (columns) and layer (rows), '
        "coloured by its probability; hover for the top-5 with log-probs. Outlined cells: the "
        "top-1 token is in the target script / a dominant-language word "
        "(hublens.views.marks). Examples chosen by hublens.views.examples.</p>",
    ]
    for i, payload in enumerate(payloads):
        grid = LensGrid.from_dict(payload)
        parts.append(f"<h3>{html.escape(grid.label or grid.text)}</h3>")
        parts.append(grid_html(grid, f"grid-{i}"))
    return parts
