"""Arithmetic trajectories (the semantic hub paper's PCA figure of experiment 2).

The last-token states of ``"r=o+"`` prompts (``"5=3+"`` asks for 2) at every layer, read as the
logit lens reads them (final norm applied when ``final_norm=True``), are compared with the
unembedding rows of the numerals ``"0"``-``"9"`` (no leading space) and of the words
``" zero"``-``" nine"`` (with one), as the arithmetic lens tokenizes them.

* Numbers per layer: the cosine distance ``1 - cos(h, u)`` of each state to the unembedding
  of its correct numeral and of its correct word, and the share of states closer to the word;
  mean with a Student-t 95% CI over prompts.
* Figure: a PCA plane fitted on the unit-normalised states of every layer pooled with the 20
  unit-normalised unembedding rows (so both live in the plane); the per-target mean trajectory
  through the layers, and the 20 unembeddings as labelled points.

Bounded, not streaming: at most ``max_items`` prompts (a seeded sample of the additions), so
memory is ``n_layers x max_items x d_model`` floats (18 x 100 x 640 fp32 = 4.6 MB for
Gemma-3-270M) whatever the data size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hublens.analysis import Row
from hublens.hooks import ActivationStore, LastToken, capture_hooks, forward_until, hook_name
from hublens.hooks.names import validate_layers
from hublens.html_page import plain
from hublens.stats import t95

if TYPE_CHECKING:
    import plotly.graph_objects as go

NUMERALS = tuple(str(d) for d in range(10))
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ANALYSIS = "arithmetic_trajectories"


@dataclass(frozen=True)
class Trajectories:
    """What :func:`arithmetic_trajectories` measured.

    Attributes:
        prompts: The prompts read (``"5=3+"``), in sample order.
        answers: Their correct digit (1..9).
        layers: Layers read.
        coords: ``(layer, prompt, 2)`` PCA coordinates of the states.
        numeral_coords: ``(10, 2)`` coordinates of the numeral unembeddings ``"0"``-``"9"``.
        word_coords: ``(10, 2)`` coordinates of the word unembeddings ``" zero"``-``" nine"``.
        explained: Variance ratio of the two components.
        numeral_distance: ``(layer, prompt)`` cosine distance to the correct numeral's row.
        word_distance: ``(layer, prompt)`` cosine distance to the correct word's row.
        numeral_ids: The numeral token ids, ``word_ids``: the word token ids.
        final_norm: Whether states went through the final norm first.
    """

    prompts: list[str]
    answers: list[int]
    layers: list[int]
    coords: np.ndarray
    numeral_coords: np.ndarray
    word_coords: np.ndarray
    explained: list[float]
    numeral_distance: np.ndarray
    word_distance: np.ndarray
    numeral_ids: list[int]
    word_ids: list[int]
    final_norm: bool

    def rows(self) -> list[Row]:
        """Per-layer means with 95% CIs: both distances and the share closer to the word."""
        out = []
        n = len(self.prompts)
        for li, layer in enumerate(self.layers):
            num, word = self.numeral_distance[li], self.word_distance[li]
            for metric, values in (
                ("cos_distance_numeral", num),
                ("cos_distance_word", word),
                ("frac_word_closer", (word < num).astype(float)),
            ):
                mean = float(values.mean())
                half = t95(n - 1) * float(values.std(ddof=1)) / math.sqrt(n) if n > 1 else math.nan
                out.append(Row(ANALYSIS, layer, metric, "add", mean, mean - half, mean + half, n))
        return out


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[float]]:
    """Two-component PCA by SVD: (mean, components ``(2, d)``, coordinates, variance ratios).

    Signs are fixed so that each component's largest-magnitude loading is positive.
    """
    mean = x.mean(0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    comps = vt[:2] * np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(1)])[:, None]
    var = s**2
    return mean, comps, (x - mean) @ comps.T, [float(v) for v in var[:2] / var.sum()]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True).clip(min=1e-12)


def _sample_prompts(data: Any, max_items: int, seed: int) -> tuple[list[str], list[int]]:
    ops = data.meta_column("op")
    keep = [i for i, op in enumerate(ops) if op == "+"]
    if not keep:
        raise ValueError(f"data {data.name!r} has no additions (meta op '+'); pass 'arithmetic'.")
    rng = np.random.default_rng(seed)
    if len(keep) > max_items:
        keep = sorted(rng.choice(keep, size=max_items, replace=False).tolist())
    prompts = [data.meta_column("lens_prompt")[i] for i in keep]
    answers = [int(data.meta_column("lens_answer")[i]) for i in keep]
    return prompts, answers


@torch.no_grad()
def arithmetic_trajectories(
    model: Any,
    data: Any = "arithmetic",
    *,
    max_items: int = 100,
    seed: int = 0,
    layers: Any = None,
    final_norm: bool = True,
    batch_size: int = 16,
) -> Trajectories:
    """Last-token states of ``"r=o+"`` prompts against the 0-9 and zero-nine unembeddings.

    Args:
        model: A HubModel.
        data: The built-in ``"arithmetic"`` data or a ParallelData with its meta
            (``op``, ``lens_prompt``, ``lens_answer``).
        max_items: Prompts read at most (a seeded sample of the additions; the bound on memory).
        seed: Seed of that sample.
        layers: Layers to read (None: all).
        final_norm: Apply the model's final norm to each state first (as the logit lens with
            the final norm reads it); False compares raw residuals (the last layer is normed
            either way, as the model reads it).
        batch_size: Prompts per forward.

    Returns:
        The trajectories; ``.rows()`` gives the per-layer numbers, :func:`trajectory_figure`
        the figure.

    Raises:
        ValueError: ``max_items < 2`` or data without additions (before any forward).
    """
    from hublens.data import ParallelData

    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 2:
        raise ValueError(f"max_items={max_items!r}: pass an integer of at least 2.")
    data = ParallelData.load(data)
    chosen = validate_layers(model, layers)
    prompts, answers = _sample_prompts(data, max_items, seed)
    numeral_ids = [model.word_token_ids(d, leading_space=False)[0] for d in NUMERALS]
    word_ids = [model.word_token_ids(w, leading_space=True)[0] for w in WORDS]
    parts = []
    for start in range(0, len(prompts), batch_size):
        batch = model.tokenize(prompts[start : start + batch_size])
        store = ActivationStore()
        hooks = capture_hooks(model, store, layers=chosen, where=LastToken(batch.lengths))
        with model.hooks(fwd_hooks=hooks):
            forward_until(model, batch.ids, max(chosen) + 1, attention_mask=batch.attention_mask)
        parts.append(store.stack([hook_name(layer) for layer in chosen]).float())
    states = torch.cat(parts, 1)  # (layer, prompt, d)
    norm = model.final_norm
    if norm is not None:
        last = int(model.n_layers) - 1
        for li, layer in enumerate(chosen):
            if final_norm or layer == last:
                states[li] = norm(states[li].to(model.unembedding_weight.dtype)).float()
    h = states.cpu().numpy().astype(np.float64)
    rows = model.unembedding_weight.detach()[numeral_ids + word_ids]  # 20 rows, not the matrix
    w = rows.float().cpu().numpy().astype(np.float64)
    u_num, u_word = w[:10], w[10:]
    answer = np.asarray(answers)
    hu = _unit(h)
    numeral_distance = 1.0 - np.einsum("lpd,pd->lp", hu, _unit(u_num)[answer])
    word_distance = 1.0 - np.einsum("lpd,pd->lp", hu, _unit(u_word)[answer])
    pooled = np.concatenate([hu.reshape(-1, h.shape[-1]), _unit(u_num), _unit(u_word)])
    _, _, coords, explained = pca_2d(pooled)
    n_states = hu.shape[0] * hu.shape[1]
    return Trajectories(
        prompts=prompts,
        answers=answers,
        layers=list(chosen),
        coords=coords[:n_states].reshape(hu.shape[0], hu.shape[1], 2),
        numeral_coords=coords[n_states : n_states + 10],
        word_coords=coords[n_states + 10 :],
        explained=explained,
        numeral_distance=numeral_distance,
        word_distance=word_distance,
        numeral_ids=numeral_ids,
        word_ids=word_ids,
        final_norm=final_norm,
    )


def trajectory_figure(result: Trajectories) -> go.Figure:
    """Per-target mean trajectories through the layers in the PCA plane, with the unembeddings."""
    import plotly.graph_objects as go

    from hublens.figures import PALETTE

    fig = go.Figure()
    answers = np.asarray(result.answers)
    for k, target in enumerate(sorted(set(result.answers))):
        path = result.coords[:, answers == target].mean(1)
        colour = PALETTE[k % len(PALETTE)]
        fig.add_trace(
            go.Scatter(
                x=path[:, 0], y=path[:, 1], mode="lines+markers", name=f"answer {target}",
                line={"color": colour}, marker={"size": 5, "color": colour},
                text=[f"layer {layer}" for layer in result.layers],
                hovertemplate=f"answer {target}, %{{text}}<extra></extra>",
            )
        )  # fmt: skip
    for name, coords, labels, symbol in (
        ("numeral unembedding", result.numeral_coords, NUMERALS, "diamond"),
        ("word unembedding", result.word_coords, WORDS, "square"),
    ):
        fig.add_trace(
            go.Scatter(
                x=coords[:, 0], y=coords[:, 1], mode="markers+text", name=name,
                text=[plain(t) for t in labels], textposition="top center",
                marker={"symbol": symbol, "size": 9, "color": "#444"},
            )
        )  # fmt: skip
    ev = ", ".join(f"{v:.1%}" for v in result.explained)
    fig.update_layout(
        template="simple_white",
        title={"text": f"Arithmetic trajectories (PCA of r=o+ last-token states; {ev})"},
        xaxis_title="PC 1",
        yaxis_title="PC 2",
        height=560,
        font={"family": "Helvetica, Arial, sans-serif", "size": 12, "color": "#222"},
    )
    return fig
