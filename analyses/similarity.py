"""Cross-type similarity of last-token hidden states (the paper's Eq. 1), streaming.

For aligned pairs (x_i, y_i) of two data types at one layer, with unit vectors x̂, ŷ:

    adjusted_i = cos(x_i, y_i) - mean_{j != i} cos(x_i, y_j)

With S_y = Σ_j ŷ_j the baseline term is (x̂_i·S_y - cos_ii)/(n-1), so the mean of adjusted_i
needs only running sums, and its variance needs Σ cos_ii x̂_i and M_x = Σ x̂_i x̂_iᵀ (a d×d
matrix per layer): memory is O(layers · d²) per pair, independent of the number of items.

Two variants need the data's sums before per-item values exist, and take a second pass:
``centered=True`` (cosines of mean-centred states; raw cosines of small models are dominated by
a few massive dimensions) and ``group_by=...`` (the arithmetic comparison: the matching pair vs
pairs with the same result vs pairs with a different result).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from torch import Tensor

from hublens.analysis import Analysis, Query, Row
from hublens.registry import register_analysis
from hublens.stats import KeyedStat, MeanStat, Stat, SumStat, t95

#: Continuation cues appended after sentence-final punctuation (the authors' code does this).
DEFAULT_CUES = {"en": " This represents", "zh": "这代表了"}


def _unit(x: Tensor) -> Tensor:
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

    def add(self, x: Tensor, y: Tensor) -> None:
        """x, y: (L, B, d) unit vectors."""
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


@register_analysis("similarity")
@dataclass
class Similarity(Analysis):
    """Baseline-adjusted cosine similarity per layer between aligned data types, with 95% CIs.

    Attributes:
        pairs: Pairs of data types to compare; None pairs the first type with each other one.
        cues: Text appended to inputs of a type (e.g. ``{"en": " This represents"}``); None
            uses :data:`DEFAULT_CUES` for types that have one, ``{}`` appends nothing.
        centered: Subtract each type's mean state (per layer) before the cosines (two passes).
        group_by: A meta key (e.g. ``"result"``) for the grouped comparison (two passes):
            metrics ``cosine_exact_match``, ``cosine_same_group``, ``cosine_different_group``.
    """

    name: str = "similarity"
    pairs: Sequence[tuple[str, str]] | None = None
    cues: dict[str, str] | None = None
    centered: bool = False
    group_by: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pairs: list[tuple[str, str]] = []
        self._texts: dict[str, list[str]] = {}
        self._pass = 0
        self._layers: list[int] = []

    def n_passes(self) -> int:
        """Passes over the data this configuration needs (2 when centred or grouped)."""
        return 2 if (self.centered or self.group_by) else 1

    def statistics(self) -> list[Stat]:
        """The pass's statistics: pair sums (one pass), type and group sums, or the means."""
        if self._pass == 1:
            return [self._stats]
        if self.n_passes() == 1:
            return [self._sums]
        return [self._type_sums, self._group_sums]

    # ---- queries -------------------------------------------------------------------------
    def queries(self, model: Any, data: Any) -> list[Query]:
        """One text per item and type (cue appended), read at the last token.

        Listed item by item, so both sides of a pair arrive in the same or nearby batches.
        """
        self._pass = 0
        types = list(data.types)
        pairs = list(self.pairs) if self.pairs is not None else [(types[0], t) for t in types[1:]]
        if not pairs:
            raise ValueError(f"data {data.name!r} has one type; similarity needs two.")
        for a, b in pairs:
            for t in (a, b):
                if t not in types:
                    raise ValueError(
                        f"pairs contains {t!r}, which is not a type of data {data.name!r} "
                        f"({', '.join(types)})."
                    )
            if a == b:
                raise ValueError(f"pairs contains ({a!r}, {b!r}): compare two different types.")
        if self.centered and self.group_by:
            raise ValueError("centered=True and group_by=... are separate analyses; pick one.")
        data.require(2, statistic="baseline-adjusted cosine (needs i != j pairs)")
        if self.group_by is not None:
            try:
                groups = data.meta_column(self.group_by)
            except (KeyError, ValueError) as exc:
                raise ValueError(
                    f"group_by={self.group_by!r}: every item of {data.name!r} needs "
                    f"meta[{self.group_by!r}]."
                ) from exc
            self._groups = [str(g) for g in groups]
        cues = DEFAULT_CUES if self.cues is None else self.cues
        self._pairs = pairs
        self._type_order = sorted({t for pair in pairs for t in pair}, key=types.index)
        self._n_items = len(data)
        self.options.update(
            pairs=[f"{a}-{b}" for a, b in pairs],
            cues={t: cues.get(t, "") for t in self._type_order},
            centered=self.centered,
            group_by=self.group_by,
            position="last token",
            baseline="mean over j != i of cos(x_i, y_j) (Eq. 1)",
        )
        columns = {t: data.column(t) for t in self._type_order}
        return [
            Query(columns[t][i] + cues.get(t, ""))
            for i in range(len(data))
            for t in self._type_order
        ]

    def _decode(self, index: int) -> tuple[str, int]:
        k = len(self._type_order)
        return self._type_order[index % k], index // k

    # ---- streaming -----------------------------------------------------------------------
    def setup(self, model: Any, layers: Sequence[int]) -> None:
        """Reset the statistics of the current pass."""
        self._layers = list(layers)
        self._pending: dict[str, dict[int, Tensor]] = {t: {} for t in self._type_order}
        self._folded: dict[tuple[str, str], set[int]] = {pair: set() for pair in self._pairs}
        if self._pass == 0:
            self._sums: KeyedStat[PairSums] = KeyedStat(PairSums)
            for pair in self._pairs:
                self._sums.slot(pair)
            self._type_sums: KeyedStat[SumStat] = KeyedStat(SumStat)  # per type
            self._group_sums: KeyedStat[SumStat] = KeyedStat(SumStat)  # per (pair, group)
        else:
            kinds = ["centered_cosine"] if self.centered else []
            if self.group_by is not None:
                kinds += ["cosine_exact_match", "cosine_same_group", "cosine_different_group"]
            self._stats: KeyedStat[MeanStat] = KeyedStat(MeanStat)
            for pair in self._pairs:
                for kind in kinds:
                    self._stats.slot((pair, kind))

    def next_pass(self) -> None:
        """Switch to the second pass: type means and group sums are complete."""
        self._pass = 1
        self._means = {t: stat.mean() for t, stat in self._type_sums.items()}

    def update(self, indices: Sequence[int], states: Sequence[Tensor]) -> None:
        """Buffer states until both sides of a pair are seen, then fold them in."""
        for index, state in zip(indices, states, strict=True):
            t, item = self._decode(index)
            h = state[:, 0, :].double()  # (L, d)
            self._pending[t][item] = h
            if self._pass == 0:
                self._type_sums.slot(t).add(h)
        for a, b in self._pairs:
            items = [
                i
                for i in self._pending[a]
                if i in self._pending[b] and i not in self._folded[(a, b)]
            ]
            if items:
                x = torch.stack([self._pending[a][i] for i in items], dim=1)  # (L, B, d)
                y = torch.stack([self._pending[b][i] for i in items], dim=1)
                self._fold((a, b), items, x, y)
                self._folded[(a, b)].update(items)
        for t in self._type_order:  # drop states every pair has used: memory stays bounded
            for i in list(self._pending[t]):
                if all(i in self._folded[pair] for pair in self._pairs if t in pair):
                    del self._pending[t][i]

    def _fold(self, pair: tuple[str, str], items: list[int], x: Tensor, y: Tensor) -> None:
        if self._pass == 0:
            if self.n_passes() == 1:
                self._sums[pair].add(_unit(x), _unit(y))
            if self.group_by is not None:
                uy = _unit(y)
                for k, i in enumerate(items):
                    self._group_sums.slot((pair, self._groups[i])).add(uy[:, k])
            return
        a, b = pair
        if self.centered:
            x, y = x - self._means[a][:, None], y - self._means[b][:, None]
        ux, uy = _unit(x), _unit(y)
        cos = (ux * uy).sum(-1).T  # (B, L)
        if self.centered:
            self._stats[(pair, "centered_cosine")].add(cos)
            return
        groups = [stat for (p, _), stat in self._group_sums.items() if p == pair]
        total = sum(stat.sum() for stat in groups)
        n_items = sum(stat.n for stat in groups)  # all ranks (after the all-reduce)
        same, diff = [], []
        for k, i in enumerate(items):
            group_sum = self._group_sums[(pair, self._groups[i])]
            n_g, s_g = group_sum.n, group_sum.sum()
            if n_g > 1:  # mean over the other items j of the same group of cos(x_i, y_j)
                same.append(((ux[:, k] * s_g).sum(-1) - cos[k]) / (n_g - 1))
            if n_items > n_g:
                diff.append((ux[:, k] * (total - s_g)).sum(-1) / (n_items - n_g))
        self._stats[(pair, "cosine_exact_match")].add(cos)
        if same:
            self._stats[(pair, "cosine_same_group")].add(torch.stack(same))
        if diff:
            self._stats[(pair, "cosine_different_group")].add(torch.stack(diff))

    # ---- results -------------------------------------------------------------------------
    def finalize(self, layers: Sequence[int]) -> list[Row]:
        """Rows per layer and pair."""
        rows: list[Row] = []
        for pair in self._pairs:
            group = f"{pair[0]}-{pair[1]}"
            if self.n_passes() == 1:
                rows += self._adjusted_rows(self._sums[pair], group, layers)
                continue
            for (p, kind), stat in self._stats.items():
                if p == pair and stat.n:
                    rows += self._stat_rows(stat, kind, group, layers)
        return rows

    def _stat_rows(
        self, stat: MeanStat, metric: str, group: str, layers: Sequence[int]
    ) -> list[Row]:
        mean, low, high = stat.ci()
        return [
            Row(
                self.name,
                layer,
                metric,
                group,
                float(mean[k]),
                float(low[k]),
                float(high[k]),
                stat.n,
            )
            for k, layer in enumerate(layers)
        ]

    def _adjusted_rows(self, s: PairSums, group: str, layers: Sequence[int]) -> list[Row]:
        s.flush()
        n = s.n
        assert s.sum_a is not None and s.sum_a2 is not None and s.sum_ax is not None
        assert s.sum_x is not None and s.sum_y is not None and s.m_x is not None
        sum_b = (s.sum_x * s.sum_y).sum(-1)  # Σ_i x̂_i·S_y
        sum_ab = (s.sum_ax * s.sum_y).sum(-1)
        sum_b2 = torch.einsum("ld,lde,le->l", s.sum_y, s.m_x, s.sum_y)
        c1, c2 = n / (n - 1), 1 / (n - 1)
        # adjusted_i = c1 a_i - c2 b_i
        mean = (c1 * s.sum_a - c2 * sum_b) / n
        sum_sq = c1**2 * s.sum_a2 - 2 * c1 * c2 * sum_ab + c2**2 * sum_b2
        var = (sum_sq - n * mean**2).clamp_min(0) / (n - 1)
        half = t95(n - 1) * (var / n).sqrt()
        raw = s.sum_a / n
        raw_var = (s.sum_a2 - n * raw**2).clamp_min(0) / (n - 1)
        raw_half = t95(n - 1) * (raw_var / n).sqrt()
        base = (sum_b - s.sum_a) / (n * (n - 1))
        rows = []
        for k, layer in enumerate(layers):
            rows.append(
                Row(
                    self.name,
                    layer,
                    "adjusted_cosine",
                    group,
                    float(mean[k]),
                    float(mean[k] - half[k]),
                    float(mean[k] + half[k]),
                    n,
                )
            )
            rows.append(
                Row(
                    self.name,
                    layer,
                    "cosine",
                    group,
                    float(raw[k]),
                    float(raw[k] - raw_half[k]),
                    float(raw[k] + raw_half[k]),
                    n,
                )
            )
            rows.append(
                Row(
                    self.name,
                    layer,
                    "baseline_cosine",
                    group,
                    float(base[k]),
                    math.nan,
                    math.nan,
                    n,
                )
            )
        return rows


register_analysis(
    "similarity_centered", partial(Similarity, name="similarity_centered", centered=True)
)
