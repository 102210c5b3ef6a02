"""Per-item last-token states of a pair, for the similarity variants that need data-wide sums.

The centred cosine, cos(x_i - μ_x, y_i - μ_y), needs the type means μ before any per-item value
exists, and so do the grouped comparisons (the sum of a group's states). There is no finite
sufficient statistic for the mean of such ratios, so instead of a second forward pass over the
data, :class:`PairStates` keeps both sides' last-token states (fp32, exactly as the scan
captured them) and :func:`centered_stats` / :func:`grouped_stats` compute the exact per-item values
once the data is complete: the same numbers as two passes, from one forward per batch.

Memory bound: ``2 x n_items x n_layers x d_model x 4`` bytes per pair (Gemma-3-270M, 18 layers
x 640: 92 KB per item; 1,000 items: 92 MB). Spill rule: blocks beyond ``spill_bytes`` (1 GiB by
default, per pair) are written to ``.npy`` files in a private temporary folder and read back one
block at a time, so resident memory stays under ``spill_bytes`` plus one block whatever the number
of items; the folder is removed when the statistic is dropped. A data-parallel scan gathers
every rank's states (:meth:`PairStates.state`), so each rank finalises from all items.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from hublens.analyses.similarity_sums import unit
from hublens.analysis import Row
from hublens.stats import MeanStat, Stat

__all__ = ["DEFAULT_SPILL_BYTES", "GroupRule", "PairStates", "centered_stats", "grouped_stats"]

#: Bytes of states a :class:`PairStates` keeps in memory before it spills blocks to disk.
DEFAULT_SPILL_BYTES = 1 << 30

#: ``"per-item"`` (hublens): per item, the mean over the OTHER items of its group (j != i), then
#: the mean over items, with a CI. ``"pooled"`` (the paper's ``arithmetic/similarity.py``): the
#: mean over all (i, j) pairs of a kind, pooled, the diagonal included in "same group".
GroupRule = Literal["per-item", "pooled"]


class PairStates(Stat):
    """Aligned last-token states of two data types, block by block (fp32, spilled past a bound).

    Args:
        spill_bytes: States kept in memory; later blocks go to a temporary folder.

    Example:
        >>> s = PairStates()
        >>> s.add(torch.ones(2, 3, 4), torch.ones(2, 3, 4), groups=["a", "b", "a"])
        >>> s.n, [x.shape for x, _ in s.blocks()]
        (3, [torch.Size([2, 3, 4])])
    """

    def __init__(self, spill_bytes: int = DEFAULT_SPILL_BYTES) -> None:
        self.spill_bytes = spill_bytes
        self.n = 0
        self.groups: list[str] = []
        self._blocks: list[tuple[Tensor, Tensor] | Path] = []
        self._in_memory = 0
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def add(
        self,
        x: Float[Tensor, "layer batch d"],
        y: Float[Tensor, "layer batch d"],
        groups: Sequence[str] | None = None,
    ) -> None:
        """Keep a batch of aligned states (and the items' group labels, if grouped)."""
        x = x.detach().to("cpu", torch.float32).contiguous()
        y = y.detach().to("cpu", torch.float32).contiguous()
        size = x.nbytes + y.nbytes
        if self._in_memory + size > self.spill_bytes:
            if self._folder is None:
                self._folder = tempfile.TemporaryDirectory(prefix="hublens-similarity-")
            path = Path(self._folder.name) / f"block{len(self._blocks)}"
            np.save(path.with_suffix(".x.npy"), x.numpy())
            np.save(path.with_suffix(".y.npy"), y.numpy())
            self._blocks.append(path)
        else:
            self._blocks.append((x, y))
            self._in_memory += size
        self.n += x.shape[1]
        self.groups += list(groups or [])

    @property
    def spilled(self) -> int:
        """Blocks written to disk."""
        return sum(isinstance(b, Path) for b in self._blocks)

    def blocks(self) -> Iterator[tuple[Tensor, Tensor]]:
        """The kept ``(x, y)`` blocks, ``(layer, batch, d)`` fp32, in the order added."""
        for block in self._blocks:
            if isinstance(block, Path):
                yield tuple(  # type: ignore[misc]
                    torch.from_numpy(np.load(block.with_suffix(s), allow_pickle=False))
                    for s in (".x.npy", ".y.npy")
                )
            else:
                yield block

    def merge(self, other: PairStates) -> None:
        """Append another shard's states (after this one's)."""
        offset = 0
        for x, y in other.blocks():
            k = x.shape[1]
            self.add(x, y, other.groups[offset : offset + k] if other.groups else None)
            offset += k

    def state(self) -> dict[str, Any]:
        """All states concatenated (a data-parallel scan gathers them), and the group labels."""
        blocks = list(self.blocks())
        if not blocks:
            return {"x": None, "y": None, "groups": []}
        return {
            "x": torch.cat([x for x, _ in blocks], dim=1),
            "y": torch.cat([y for _, y in blocks], dim=1),
            "groups": list(self.groups),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the contents with a :meth:`state`."""
        self.__init__(self.spill_bytes)  # type: ignore[misc]
        if state["x"] is not None:
            self.add(state["x"], state["y"], state["groups"])

    def empty(self) -> PairStates:
        """An empty statistic with the same spill bound."""
        return PairStates(self.spill_bytes)


def _means(s: PairStates) -> tuple[Tensor, Tensor]:
    sum_x: Tensor | float = 0.0
    sum_y: Tensor | float = 0.0
    for x, y in s.blocks():
        sum_x = sum_x + x.double().sum(1)
        sum_y = sum_y + y.double().sum(1)
    assert isinstance(sum_x, Tensor) and isinstance(sum_y, Tensor)
    return sum_x / s.n, sum_y / s.n


def centered_stats(s: PairStates) -> MeanStat:
    """Per-item ``cos(x_i - μ_x, y_i - μ_y)`` over all items (μ: the type's mean state)."""
    mean_x, mean_y = _means(s)
    stat = MeanStat()
    for x, y in s.blocks():
        ux, uy = unit(x.double() - mean_x[:, None]), unit(y.double() - mean_y[:, None])
        stat.add((ux * uy).sum(-1).T)  # (B, L)
    return stat


def _group_sums(s: PairStates) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, int]]:
    sum_x: dict[str, Tensor] = {}
    sum_y: dict[str, Tensor] = {}
    count: dict[str, int] = {}
    offset = 0
    for x, y in s.blocks():
        ux, uy = unit(x.double()), unit(y.double())
        for k in range(x.shape[1]):
            g = s.groups[offset + k]
            sum_x[g] = ux[:, k] if g not in sum_x else sum_x[g] + ux[:, k]
            sum_y[g] = uy[:, k] if g not in sum_y else sum_y[g] + uy[:, k]
            count[g] = count.get(g, 0) + 1
        offset += x.shape[1]
    return sum_x, sum_y, count


def grouped_stats(s: PairStates, rule: GroupRule) -> dict[str, MeanStat | tuple[Tensor, int]]:
    """The grouped comparison (e.g. arithmetic items grouped by their result).

    Returns:
        metric -> a :class:`MeanStat` over items (with a CI), or ``(values, n_pairs)`` for a
        mean pooled over pairs (no CI). ``cosine_exact_match`` (cos(x_i, y_i)),
        ``cosine_same_group``, ``cosine_different_group``; with ``rule="pooled"`` also
        ``cosine_diff`` (the paper's "Diff": cos(x_i, y_i) minus the mean over ALL pairs).
    """
    sum_x, sum_y, count = _group_sums(s)
    total_y = torch.stack(list(sum_y.values())).sum(0)
    n = s.n
    exact, same, diff = MeanStat(), MeanStat(), MeanStat()
    minus_all = MeanStat()
    if rule == "pooled":
        total_x = torch.stack(list(sum_x.values())).sum(0)
        all_sum = (total_x * total_y).sum(-1)  # Σ over all (i, j) of cos(x_i, y_j)
        same_sum = torch.stack([(sum_x[g] * sum_y[g]).sum(-1) for g in count]).sum(0)
        same_n = sum(c * c for c in count.values())
    offset = 0
    for x, y in s.blocks():
        ux, uy = unit(x.double()), unit(y.double())
        cos = (ux * uy).sum(-1).T  # (B, L)
        exact.add(cos)
        if rule == "pooled":
            minus_all.add(cos - all_sum / (n * n))
            offset += x.shape[1]
            continue
        same_rows, diff_rows = [], []
        for k in range(x.shape[1]):
            g = s.groups[offset + k]
            n_g, s_g = count[g], sum_y[g]
            if n_g > 1:  # mean over the other items j of the same group of cos(x_i, y_j)
                same_rows.append(((ux[:, k] * s_g).sum(-1) - cos[k]) / (n_g - 1))
            if n > n_g:
                diff_rows.append((ux[:, k] * (total_y - s_g)).sum(-1) / (n - n_g))
        if same_rows:
            same.add(torch.stack(same_rows))
        if diff_rows:
            diff.add(torch.stack(diff_rows))
        offset += x.shape[1]
    if rule == "pooled":
        out: dict[str, MeanStat | tuple[Tensor, int]] = {"cosine_exact_match": exact}
        out["cosine_same_group"] = (same_sum / same_n, same_n)
        if n * n > same_n:
            out["cosine_different_group"] = (
                (all_sum - same_sum) / (n * n - same_n),
                n * n - same_n,
            )
        out["cosine_diff"] = minus_all
        return out
    return {"cosine_exact_match": exact, "cosine_same_group": same, "cosine_different_group": diff}


def stat_rows(
    name: str, stat: MeanStat | tuple[Tensor, int], metric: str, group: str, layers: Sequence[int]
) -> list[Row]:
    """Rows per layer of a per-item statistic (mean and CI) or a pooled mean (NaN CI)."""
    if isinstance(stat, tuple):
        values, n = stat
        return [
            Row(name, layer, metric, group, float(values[k]), math.nan, math.nan, n)
            for k, layer in enumerate(layers)
        ]
    if not stat.n:
        return []
    mean, low, high = stat.ci()
    return [
        Row(name, layer, metric, group, float(mean[k]), float(low[k]), float(high[k]), stat.n)
        for k, layer in enumerate(layers)
    ]
