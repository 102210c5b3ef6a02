"""Cross-type similarity of last-token hidden states (the paper's Eq. 1), one forward pass.

For aligned pairs (x_i, y_i) of two data types at one layer, with unit vectors x̂, ŷ:

    adjusted_i = cos(x_i, y_i) - baseline_i

with the per-item baseline mean_{j != i} cos(x_i, y_j) (hublens) or one global off-diagonal mean
per layer (the paper's code): running sums suffice (:mod:`hublens.analyses.similarity_sums`),
memory independent of the number of items. ``centered=True`` (cosines of mean-centred states;
raw cosines of small models are dominated by a few massive dimensions) and ``group_by=...`` (the
arithmetic comparison: the matching pair vs pairs with the same result vs a different one) need
data-wide sums first: they keep the pair's last-token states
(:mod:`hublens.analyses.similarity_states`, bounded with a spill rule) and finish in
``finalize``, so every variant costs one forward per batch.

At the model's last layer the state read is the model's output (the final norm applied, as
transformers' ``last_hidden_state`` that the paper's code reads) unless ``last_layer="residual"``.
``method=`` picks the defaults of a published method (:mod:`hublens.analyses.similarity_method`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from hublens.analyses.similarity_method import (
    DEFAULT_CUES,
    PRESETS,
    CueRule,
    LastLayer,
    append_cue,
    preset_source,
)
from hublens.analyses.similarity_states import (
    DEFAULT_SPILL_BYTES,
    GroupRule,
    PairStates,
    centered_stats,
    grouped_stats,
    stat_rows,
)
from hublens.analyses.similarity_sums import Baseline, PairSums, adjusted_rows, unit
from hublens.analysis import Analysis, Query, Row
from hublens.methods import Method, check_method
from hublens.registry import register_analysis
from hublens.stats import KeyedStat, Stat

__all__ = ["DEFAULT_CUES", "PairSums", "PairStates", "Similarity"]

_CHOICES: dict[str, tuple[str, ...]] = {
    "cue_rule": ("sentence-final", "always"),
    "baseline": ("per-item", "global"),
    "last_layer": ("output", "residual"),
    "group_rule": ("per-item", "pooled"),
}


@register_analysis("similarity")
@dataclass
class Similarity(Analysis):
    """Baseline-adjusted cosine similarity per layer between aligned data types, with 95% CIs.

    Options left as None take the value of the ``method`` preset; the values used, ``method``
    and ``method_source`` are recorded in ``options``.

    Attributes:
        pairs: Pairs of data types to compare; None pairs the first type with each other one.
        cues: Text appended to inputs of a type (e.g. ``{"en": " This represents"}``) by
            ``cue_rule``; None takes the preset's (hublens: :data:`DEFAULT_CUES`), ``{}`` none.
        cue_rule: ``"sentence-final"`` (only after a text ending in ``.``/``."``, ``。`` for
            zh/ja) or ``"always"``.
        baseline: ``"per-item"`` (mean over j != i of cos(x_i, y_j)) or ``"global"`` (one
            off-diagonal mean per layer, the paper's code); same mean, different CI.
        last_layer: ``"output"`` (final norm applied at the model's last layer) or
            ``"residual"`` (the raw residual stream there).
        centered: Subtract each type's mean state (per layer) before the cosines.
        group_by: A meta key (e.g. ``"result"``) for the grouped comparison: metrics
            ``cosine_exact_match``, ``cosine_same_group``, ``cosine_different_group``.
        group_rule: ``"per-item"`` (per item, the other items of its group, then over items) or
            ``"pooled"`` (the paper's: pooled over pairs, i = j included; adds ``cosine_diff``).
        method: ``"hublens"``, ``"semantic-hub"`` or ``"wendler"`` (:mod:`hublens.methods`).
        spill_bytes: States kept in memory per pair (centred/grouped) before spilling to disk.

    Example:
        >>> from hublens import semantic_hub_scan  # doctest: +SKIP
        >>> semantic_hub_scan("gemma-3-270m", "multilingual-sentences",  # doctest: +SKIP
        ...                   analyses=[Similarity(method="semantic-hub")])
    """

    name: str = "similarity"
    pairs: Sequence[tuple[str, str]] | None = None
    cues: dict[str, str] | None = None
    cue_rule: CueRule | None = None
    baseline: Baseline | None = None
    last_layer: LastLayer | None = None
    centered: bool = False
    group_by: str | None = None
    group_rule: GroupRule | None = None
    method: Method = "hublens"
    spill_bytes: int = DEFAULT_SPILL_BYTES
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pairs: list[tuple[str, str]] = []
        self._layers: list[int] = []
        self._groups: list[str] = []

    def statistics(self) -> list[Stat]:
        """The pass's statistics: pair sums, or the pairs' kept states (centred, grouped)."""
        return [self._states] if self._keeps_states() else [self._sums]

    def _keeps_states(self) -> bool:
        return self.centered or self.group_by is not None

    def _resolve(self) -> dict[str, Any]:
        """The option values used: the user's, else the preset's (checked)."""
        method = check_method(self.method)
        preset = PRESETS[method]
        used = {
            key: preset[key] if getattr(self, key) is None else getattr(self, key)
            for key in ("cues", "cue_rule", "baseline", "last_layer", "group_rule")
        }
        for key, choices in _CHOICES.items():
            if used[key] not in choices:
                raise ValueError(
                    f"{key}={used[key]!r}: choose one of {', '.join(map(repr, choices))}."
                )
        if not isinstance(used["cues"], dict):
            raise ValueError(f"cues={used['cues']!r}: pass a dict type -> cue text, or {{}}.")
        size = self.spill_bytes
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"spill_bytes={size!r}: pass a non-negative int (bytes).")
        return used

    # ---- queries -------------------------------------------------------------------------
    def queries(self, model: Any, data: Any) -> list[Query]:
        """One text per item and type (cue appended by the rule), read at the last token.

        Listed item by item, so both sides of a pair arrive in the same or nearby batches.
        """
        used = self._resolve()
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
        cues, rule = used["cues"], used["cue_rule"]
        self._used = used
        self._pairs = pairs
        self._type_order = sorted({t for pair in pairs for t in pair}, key=types.index)
        options: dict[str, Any] = {
            "method": self.method,
            "method_source": preset_source(self.method),
            "pairs": [f"{a}-{b}" for a, b in pairs],
            "cues": {t: cues.get(t, "") for t in self._type_order},
            "cue_rule": rule,
            "centered": self.centered,
            "group_by": self.group_by,
            "last_layer": used["last_layer"],
            "position": "last token",
        }
        if self.group_by is not None:
            options["group_rule"] = used["group_rule"]
        elif not self.centered:
            options["baseline"] = used["baseline"]
        self.options.update(options)
        columns = {t: data.column(t) for t in self._type_order}
        return [
            Query(append_cue(columns[t][i], t, cues, rule))
            for i in range(len(data))
            for t in self._type_order
        ]

    def _decode(self, index: int) -> tuple[str, int]:
        k = len(self._type_order)
        return self._type_order[index % k], index // k

    # ---- streaming -----------------------------------------------------------------------
    def setup(self, model: Any, layers: Sequence[int]) -> None:
        """Reset the statistics; find the model's last layer and its final norm."""
        self._layers = list(layers)
        self._pending: dict[str, dict[int, Tensor]] = {t: {} for t in self._type_order}
        self._folded: dict[tuple[str, str], set[int]] = {pair: set() for pair in self._pairs}
        self._sums: KeyedStat[PairSums] = KeyedStat(PairSums)
        self._states: KeyedStat[PairStates] = KeyedStat(partial(PairStates, self.spill_bytes))
        for pair in self._pairs:
            (self._states if self._keeps_states() else self._sums).slot(pair)
        last = int(model.n_layers) - 1
        norm = getattr(model, "final_norm", None)
        self._norm = norm if self._used["last_layer"] == "output" else None
        self._norm_at = self._layers.index(last) if last in self._layers else None
        if self._used["last_layer"] == "output":
            self.options["last_layer"] = (
                f"output (final norm applied at layer {last})"
                if norm is not None
                else "output (the model has no final norm: the residual)"
            )

    def _output_state(self, h: Float[Tensor, "batch d_model"]) -> Float[Tensor, "batch d_model"]:
        """The model's output state from the last block's residual: its final norm, in fp32."""
        assert self._norm is not None
        dtype = next(self._norm.parameters(), h).dtype
        with torch.no_grad():
            return self._norm(h.to(dtype)).float()

    def update(
        self, indices: Sequence[int], states: Sequence[Float[Tensor, "layer 1 d_model"]]
    ) -> None:
        """Buffer states until both sides of a pair are seen, then fold them in."""
        h = torch.stack([state[:, 0, :] for state in states])  # (B, L, d), a new tensor
        if self._norm is not None and self._norm_at is not None:
            h[:, self._norm_at] = self._output_state(h[:, self._norm_at]).to(h.device)
        for k, index in enumerate(indices):
            t, item = self._decode(index)
            self._pending[t][item] = h[k]
        for a, b in self._pairs:
            items = [
                i
                for i in self._pending[a]
                if i in self._pending[b] and i not in self._folded[(a, b)]
            ]
            if items:
                x = torch.stack([self._pending[a][i] for i in items], dim=1)  # (L, B, d)
                y = torch.stack([self._pending[b][i] for i in items], dim=1)
                if self._keeps_states():
                    groups = [self._groups[i] for i in items] if self.group_by else None
                    self._states[(a, b)].add(x, y, groups)
                else:
                    self._sums[(a, b)].add(unit(x.double()), unit(y.double()))
                self._folded[(a, b)].update(items)
        for t in self._type_order:  # drop states every pair has used: memory stays bounded
            for i in list(self._pending[t]):
                if all(i in self._folded[pair] for pair in self._pairs if t in pair):
                    del self._pending[t][i]

    # ---- results -------------------------------------------------------------------------
    def finalize(self, layers: Sequence[int]) -> list[Row]:
        """Rows per layer and pair."""
        rows: list[Row] = []
        for pair in self._pairs:
            group = f"{pair[0]}-{pair[1]}"
            if not self._keeps_states():
                rows += adjusted_rows(
                    self.name, self._sums[pair], group, layers, baseline=self._used["baseline"]
                )
            elif self.centered:
                stat = centered_stats(self._states[pair])
                rows += stat_rows(self.name, stat, "centered_cosine", group, layers)
            else:
                stats = grouped_stats(self._states[pair], self._used["group_rule"])
                for metric, value in stats.items():
                    rows += stat_rows(self.name, value, metric, group, layers)
        return rows


register_analysis(
    "similarity_centered", partial(Similarity, name="similarity_centered", centered=True)
)
