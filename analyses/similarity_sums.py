"""Streaming sums for the paper's Eq. 1 (baseline-adjusted cosine): memory independent of n.

For aligned pairs (x_i, y_i) of two data types at one layer, with unit vectors x̂, ŷ and
S_y = Σ_j ŷ_j, the per-item baseline (hublens's default) is

    adjusted_i = cos(x_i, y_i) - mean_{j != i} cos(x_i, y_j) = a_i - (x̂_i·S_y - a_i)/(n-1),

so the mean of adjusted_i needs only running sums, and its variance needs Σ a_i x̂_i and
M_x = Σ x̂_i x̂_iᵀ (a d×d matrix per layer): O(layers · d²) per pair, whatever the number of
items. The paper's code (``lib/utils.py`` 147-154) subtracts ONE global baseline per layer,
b = mean over all i != j of cos(x_i, y_j) = (Σ_i x̂_i·S_y - Σ a_i) / (n(n-1)): the same mean, with
per-item values a_i - b whose spread is that of the a_i.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from hublens.analysis import Row
from hublens.stats import Stat, t95

__all__ = ["Baseline", "PairSums", "adjusted_rows", "unit"]

#: ``"per-item"``: mean over j != i of cos(x_i, y_j) per item (hublens); ``"global"``: one
#: off-diagonal mean per layer (the paper's code).
Baseline = Literal["per-item", "global"]


def unit(x: Float[Tensor, "*batch d"]) -> Float[Tensor, "*batch d"]:
    """``x`` scaled to unit norm along the last axis.

    Raises:
        FloatingPointError: A row has zero norm (its cosine is undefined).
    """
    norm = x.norm(dim=-1, keepdim=True)
    if bool((norm == 0).any()):
        raise FloatingPointError("A hidden state has zero norm; its cosine is undefined.")
    return x / norm


#: Unit vectors buffered before one (L, d, d) update of ``PairSums.m_x``: a per-batch
#: rank-B update writes the whole L*d*d matrix for a handful of items (memory-bound); blocks of
#: this many items make it one efficient batched matmul (buffer: _M_BLOCK * L * d doubles).
_M_BLOCK = 64


@dataclass
class PairSums(Stat):
    """Running sums for one pair of data types, every layer at once (float64).

    ``m_x`` is updated in blocks of :data:`_M_BLOCK` items; call :meth:`flush` before reading it
    (``finalize``, ``merge`` and :meth:`state` do).
    """

    n: int = 0
    sum_a: Tensor | None = None  # (L,)
    sum_a2: Tensor | None = None  # (L,)
    sum_ax: Tensor | None = None  # (L, d)
    sum_x: Tensor | None = None  # (L, d)
    sum_y: Tensor | None = None  # (L, d)
    m_x: Tensor | None = None  # (L, d, d)

    def add(self, x: Float[Tensor, "layer batch d"], y: Float[Tensor, "layer batch d"]) -> None:
        """Add a batch of aligned unit vectors."""
        x, y = x.double(), y.double()
        a = (x * y).sum(-1)  # (L, B)
        terms = {
            "sum_a": a.sum(1),
            "sum_a2": (a**2).sum(1),
            "sum_ax": torch.einsum("lb,lbd->ld", a, x),
            "sum_x": x.sum(1),
            "sum_y": y.sum(1),
        }
        for key, value in terms.items():
            current = getattr(self, key)
            setattr(self, key, value if current is None else current + value)
        self.n += x.shape[1]
        block = self.__dict__.setdefault("_block", [])
        block.append(x)
        if sum(b.shape[1] for b in block) >= _M_BLOCK:
            self.flush()

    def flush(self) -> None:
        """Fold the buffered unit vectors into ``m_x`` (one batched matmul, in place)."""
        block = self.__dict__.pop("_block", [])
        if not block:
            return
        x = torch.cat(block, dim=1)  # (L, B, d)
        if self.m_x is None:
            self.m_x = torch.einsum("lbd,lbe->lde", x, x)
        else:
            self.m_x.baddbmm_(x.transpose(1, 2), x)

    def merge(self, other: PairSums) -> None:
        """Add another shard's sums (data-parallel scans, :mod:`hublens.distributed`)."""
        self.flush()
        other.flush()
        for key in ("sum_a", "sum_a2", "sum_ax", "sum_x", "sum_y", "m_x"):
            mine, theirs = getattr(self, key), getattr(other, key)
            if theirs is not None:
                setattr(self, key, theirs.clone() if mine is None else mine + theirs)
        self.n += other.n

    def state(self) -> dict[str, Any]:
        """The sums (buffered unit vectors folded into ``m_x`` first)."""
        self.flush()
        return super().state()

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the sums (drops any buffered vectors)."""
        self.__dict__.pop("_block", None)
        super().load_state(state)


def _row(name: str, layer: int, metric: str, group: str, mean: float, half: float, n: int) -> Row:
    return Row(name, layer, metric, group, mean, mean - half, mean + half, n)


def adjusted_rows(
    name: str, s: PairSums, group: str, layers: Sequence[int], *, baseline: Baseline
) -> list[Row]:
    """``adjusted_cosine``, ``cosine`` and ``baseline_cosine`` rows per layer from the sums.

    Args:
        name: The analysis name.
        s: The pair's sums (all items).
        group: The row group, e.g. ``"en-zh"``.
        layers: The scanned layers, in the order of the sums' first axis.
        baseline: ``"per-item"`` or ``"global"`` (see the module docstring); the mean is the
            same, the 95% interval is over the per-item values of the chosen rule.
    """
    s.flush()
    n = s.n
    assert s.sum_a is not None and s.sum_a2 is not None and s.sum_ax is not None
    assert s.sum_x is not None and s.sum_y is not None and s.m_x is not None
    sum_b = (s.sum_x * s.sum_y).sum(-1)  # Σ_i x̂_i·S_y
    raw = s.sum_a / n
    raw_var = (s.sum_a2 - n * raw**2).clamp_min(0) / (n - 1)
    raw_half = t95(n - 1) * (raw_var / n).sqrt()
    c1, c2 = n / (n - 1), 1 / (n - 1)
    mean = (c1 * s.sum_a - c2 * sum_b) / n  # adjusted_i = c1 a_i - c2 b_i
    if baseline == "global":
        half = raw_half  # a_i minus a constant: the spread of a_i
    else:
        sum_ab = (s.sum_ax * s.sum_y).sum(-1)
        sum_b2 = torch.einsum("ld,lde,le->l", s.sum_y, s.m_x, s.sum_y)
        sum_sq = c1**2 * s.sum_a2 - 2 * c1 * c2 * sum_ab + c2**2 * sum_b2
        var = (sum_sq - n * mean**2).clamp_min(0) / (n - 1)
        half = t95(n - 1) * (var / n).sqrt()
    base = (sum_b - s.sum_a) / (n * (n - 1))
    rows = []
    for k, layer in enumerate(layers):
        rows.append(_row(name, layer, "adjusted_cosine", group, float(mean[k]), float(half[k]), n))
        rows.append(_row(name, layer, "cosine", group, float(raw[k]), float(raw_half[k]), n))
        rows.append(
            Row(name, layer, "baseline_cosine", group, float(base[k]), math.nan, math.nan, n)
        )
    return rows
