"""The contract between the scan engine and an analysis.

An analysis asks for hidden states by listing :class:`Query` objects (a text and which of its
token positions to read). The engine tokenizes every query once, runs ONE forward per batch for
all analyses together, and hands each analysis the states of its own queries with
:meth:`Analysis.update`. Analyses keep streaming statistics only (nothing per item that grows
with the hidden size), and turn them into tidy rows in :meth:`Analysis.finalize`.

What the engine asks of an analysis, besides its queries:

* :meth:`Analysis.n_passes`: passes over the data (2 when per-item values need data-wide sums);
* :meth:`Analysis.reads_other_items`: whether a query holds other items (few-shot prompts), so
  the analysis cannot run on a shard of the data;
* :meth:`Analysis.statistics`: the :class:`~hublens.stats.Stat` objects the pass just made,
  which a data-parallel scan all-reduces in place (:mod:`hublens.distributed`) before
  :meth:`Analysis.next_pass` or :meth:`Analysis.finalize`.

Analyses are found by name through :mod:`hublens.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from jaxtyping import Float
from torch import Tensor

from hublens.stats import Stat

__all__ = ["ROW_COLUMNS", "Analysis", "Query", "Row", "check_max_items"]

#: Columns of every row an analysis returns (``ScanResult.table()``), in order.
ROW_COLUMNS = ("analysis", "layer", "metric", "group", "mean", "ci_low", "ci_high", "n", "lens")


def check_max_items(max_items: int | None) -> None:
    """Validate an analysis's ``max_items`` option: a positive int, or None for all items.

    Raises:
        ValueError: Anything else (bools, zero, negatives, floats).
    """
    if max_items is not None and (
        isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1
    ):
        raise ValueError(f"max_items={max_items!r}: pass a positive int or None (all items).")


@dataclass(frozen=True)
class Query:
    """A text and the token positions to read from it.

    Attributes:
        text: The text (the engine tokenizes it with the model's BOS policy; with BOS, token 0
            is BOS).
        positions: ``"last"`` (the last token), ``"all"`` (every token, BOS included), or token
            indices into ``model.tokenize(text).ids[0]`` (into the ids without BOS when
            ``bos`` is False).
        bos: Start the text with BOS: None follows the model's policy; True/False override it
            (e.g. the semantic hub paper reads running text without BOS).
    """

    text: str
    positions: Literal["last", "all"] | tuple[int, ...] = "last"
    bos: bool | None = None


@dataclass(frozen=True)
class Row:
    """One number of a result: an analysis's metric at a layer, for a group.

    Attributes:
        analysis: The analysis name.
        layer: Layer index (``resid_post`` of that block).
        metric: What is measured, e.g. ``"adjusted_cosine"``.
        group: Sub-population, e.g. ``"en-zh"``, or ``""``.
        mean: The estimate.
        ci_low: Lower end of its 95% confidence interval (NaN if none).
        ci_high: Upper end.
        n: Number of items it averages.
        lens: The lens the number was read through (``"logit"``, ``"tuned"``, ...; see
            :mod:`hublens.lenses.resolve`), or ``""`` for analyses that read no lens
            (similarity).
    """

    analysis: str
    layer: int
    metric: str
    group: str
    mean: float
    ci_low: float
    ci_high: float
    n: int
    lens: str = ""


@dataclass
class Analysis(ABC):
    """Base class of the analyses a scan runs.

    Attributes:
        name: The analysis name (the ``analysis`` column).
        options: Settings recorded in the result's provenance (final norm, token policy, ...).
    """

    name: str = "analysis"
    options: dict[str, Any] = field(default_factory=dict)

    @abstractmethod
    def queries(self, model: Any, data: Any) -> Sequence[Query]:
        """All queries this analysis needs, in a fixed order (validated here, before any forward).

        Args:
            model: The HubModel.
            data: The ParallelData.
        """

    @abstractmethod
    def update(
        self, indices: Sequence[int], states: Sequence[Float[Tensor, "layer n_pos d_model"]]
    ) -> None:
        """Consume a batch of states.

        ``states[k]`` belongs to query ``indices[k]`` (fp32, on the CPU or the model's device),
        one row per scanned layer and per requested position.
        """

    @abstractmethod
    def finalize(self, layers: Sequence[int]) -> list[Row]:
        """Turn the streaming statistics into rows, one per (layer, metric, group)."""

    def n_passes(self) -> int:
        """Passes over the data the analysis needs (2 when per-item values need data-wide sums)."""
        return 1

    def reads_other_items(self) -> bool:
        """Whether an item's queries contain other items (few-shot prompts).

        Such an analysis cannot run on a shard of the data
        (``semantic_hub_scan(distributed=True)`` refuses it).
        """
        return False

    def statistics(self) -> list[Stat]:
        """The statistics the pass just finished made, in a fixed order (same on every rank).

        A data-parallel scan calls :meth:`Stat.all_reduce_` on each after every pass; the
        analysis then reads them in :meth:`next_pass` or :meth:`finalize` as usual. Everything
        a later pass or ``finalize`` reads from the data must be in these statistics.

        Raises:
            NotImplementedError: The analysis does not declare its statistics (it can run in
                one process only).
        """
        raise NotImplementedError(
            f"Analysis {self.name!r} ({type(self).__name__}) declares no statistics(), so it "
            "cannot run distributed; implement statistics() or run it in one process."
        )

    def setup(self, model: Any, layers: Sequence[int]) -> None:  # noqa: B027 - optional hook
        """Called before the first batch of every pass with the model and the scanned layers."""

    def next_pass(self) -> None:  # noqa: B027 - optional hook
        """Called between passes of an analysis with ``n_passes() > 1``."""


def declares_statistics(analysis: Analysis) -> bool:
    """Whether ``analysis`` overrides :meth:`Analysis.statistics` (can run distributed)."""
    return type(analysis).statistics is not Analysis.statistics
