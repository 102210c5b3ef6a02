"""Streaming statistics that add, merge and all-reduce themselves, with 95% intervals.

Every statistic an analysis keeps is a :class:`Stat`: it grows with ``add`` (the signature is
the statistic's own), folds another instance of its kind in with :meth:`Stat.merge`, and says
what it holds as a plain :meth:`Stat.state` (tensors, numbers, lists and string-keyed dicts),
which :meth:`Stat.load_state` reads back. That is all :mod:`hublens.distributed` needs:
:meth:`Stat.all_reduce_` gathers every rank's state and folds them in rank order, so each rank
ends with the statistic of the whole data (as tuned-lens's ``LogitStats.all_reduce_``).

Example:
    >>> import torch
    >>> a, b = MeanStat(), MeanStat()
    >>> a.add(torch.tensor([[1.0], [2.0]]))
    >>> b.add(torch.tensor([[3.0]]))
    >>> a.merge(b)
    >>> a.n, float(a.mean[0])
    (3, 2.0)
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch
from torch import Tensor

__all__ = ["KeyedStat", "MeanStat", "Stat", "SumStat", "t95"]

#: Two-sided 95% quantiles of Student's t for small degrees of freedom; 1.96 beyond.
_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    25: 2.060,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}


def t95(df: int) -> float:
    """Two-sided 95% Student-t quantile for ``df`` degrees of freedom (conservative lookup)."""
    if df < 1:
        return math.nan
    keys = [k for k in _T95 if k <= df]
    return _T95[max(keys)] if df <= 120 else 1.96


class Stat(ABC):
    """A streaming statistic: merges with its own kind, serialises to a plain state.

    Dataclass statistics get :meth:`state`, :meth:`load_state` and :meth:`empty` for free
    (their fields are the state); others override them.
    """

    @abstractmethod
    def merge(self, other: Any) -> None:
        """Fold ``other`` (a statistic of the same kind, e.g. another rank's) into this one."""

    def state(self) -> dict[str, Any]:
        """What the statistic holds: tensors, numbers, None, lists and str-keyed dicts."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the contents with a :meth:`state` (of this kind)."""
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            setattr(self, f.name, state[f.name])

    def empty(self) -> Stat:
        """A new statistic of the same kind with no observations."""
        return type(self)()

    def all_reduce_(self, group: Any = None) -> None:
        """Replace this statistic by the merge of every rank's, in rank order (a collective).

        Args:
            group: A ``torch.distributed`` process group (None: the default one).
        """
        from hublens.distributed import all_reduce_stats

        all_reduce_stats([self], group)


@dataclass
class MeanStat(Stat):
    """Running mean and variance of a vector of metrics (e.g. one entry per layer), Welford-style.

    Memory is constant in the number of observations; two instances merge exactly
    (Chan et al.), so data-parallel shards reduce to the single-process result.

    Attributes:
        n: Number of observations.
        mean: Running mean, float64.
        m2: Running sum of squared deviations, float64.
    """

    n: int = 0
    mean: Tensor | None = None
    m2: Tensor | None = None

    def add(self, values: Tensor) -> None:
        """Add observations: ``values`` is ``(n_obs, *shape)``."""
        values = values.detach().to("cpu", torch.float64)
        if values.shape[0] == 0:
            return
        if not bool(torch.isfinite(values).all()):
            raise FloatingPointError("MeanStat.add got NaN or infinite values.")
        batch = MeanStat(values.shape[0], values.mean(0), ((values - values.mean(0)) ** 2).sum(0))
        self.merge(batch)

    def merge(self, other: MeanStat) -> None:
        """Fold another statistic into this one (Chan et al.'s parallel formula)."""
        if other.n == 0:
            return
        assert other.mean is not None and other.m2 is not None  # n > 0 implies both are set
        if self.n == 0 or self.mean is None or self.m2 is None:
            self.n, self.mean, self.m2 = other.n, other.mean.clone(), other.m2.clone()
            return
        n = self.n + other.n
        delta = other.mean - self.mean
        self.mean = self.mean + delta * (other.n / n)
        self.m2 = self.m2 + other.m2 + delta**2 * (self.n * other.n / n)
        self.n = n

    def ci(self) -> tuple[Tensor, Tensor, Tensor]:
        """(mean, ci_low, ci_high): 95% t-interval of the mean (NaN bounds when n < 2)."""
        if self.n == 0 or self.mean is None or self.m2 is None:
            raise ValueError("No observations: a mean needs at least one item.")
        if self.n < 2:
            nan = torch.full_like(self.mean, math.nan)
            return self.mean, nan, nan
        sem = (self.m2 / (self.n - 1)).sqrt() / math.sqrt(self.n)
        half = t95(self.n - 1) * sem
        return self.mean, self.mean - half, self.mean + half


@dataclass
class SumStat(Stat):
    """A running sum of tensors and the number of terms (e.g. a type's summed hidden states).

    Attributes:
        n: Number of terms added.
        total: Their sum (None before the first).
    """

    n: int = 0
    total: Tensor | None = None

    def add(self, value: Tensor, count: int = 1) -> None:
        """Add ``value`` (one term, or ``count`` terms already summed)."""
        self.total = value.clone() if self.total is None else self.total + value
        self.n += count

    def merge(self, other: SumStat) -> None:
        """Add another sum."""
        if other.total is not None:
            mine = self.total
            self.total = other.total if mine is None else mine + other.total.to(mine.device)
        self.n += other.n

    def sum(self) -> Tensor:
        """``total`` (raises when nothing was added)."""
        if self.total is None:
            raise ValueError("SumStat.sum: nothing was added.")
        return self.total

    def mean(self) -> Tensor:
        """``total / n``."""
        if self.n == 0:
            raise ValueError("SumStat.mean: nothing was added.")
        return self.sum() / self.n


S = TypeVar("S", bound=Stat)


class KeyedStat(Stat, Generic[S]):
    """Statistics per key (a group, a type, a pair), made on first use by ``factory``.

    Merging unites the keys: a key only one rank saw is kept. Keys are strings, ints or
    (nested) tuples of them; insertion order is kept (and, on merge, ``self``'s keys first).

    Args:
        factory: Makes the statistic of a new key, e.g. ``MeanStat``.

    Example:
        >>> stats = KeyedStat(MeanStat)
        >>> stats.slot("add").add(torch.ones(2, 3))
        >>> list(stats), stats["add"].n
        (['add'], 2)
    """

    def __init__(self, factory: Callable[[], S]) -> None:
        self.factory = factory
        self._items: dict[Any, S] = {}

    def slot(self, key: Any) -> S:
        """The statistic of ``key``, made empty if the key is new."""
        if key not in self._items:
            self._items[key] = self.factory()
        return self._items[key]

    def __getitem__(self, key: Any) -> S:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[Any, S]]:
        """``(key, statistic)`` pairs in insertion order."""
        return list(self._items.items())

    def values(self) -> list[S]:
        """The statistics in insertion order."""
        return list(self._items.values())

    def merge(self, other: KeyedStat[S]) -> None:
        """Merge key by key; keys new to ``self`` are taken over."""
        for key, stat in other.items():
            if key in self._items:
                self._items[key].merge(stat)
            else:
                self._items[key] = stat

    def state(self) -> dict[str, Any]:
        """``{"keys": [...], "values": [state, ...]}``."""
        return {"keys": list(self._items), "values": [s.state() for s in self._items.values()]}

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace the contents with a :meth:`state`."""
        self._items = {}
        for key, sub in zip(state["keys"], state["values"], strict=True):
            stat = self.factory()
            stat.load_state(sub)
            self._items[key] = stat

    def empty(self) -> KeyedStat[S]:
        """A new, empty keyed statistic with the same factory."""
        return KeyedStat(self.factory)
