"""Streaming, mergeable statistics with 95% confidence intervals."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

#: Two-sided 95% quantiles of Student's t for small degrees of freedom; 1.96 beyond.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021,
        60: 2.000, 120: 1.980}


def t95(df: int) -> float:
    """Two-sided 95% Student-t quantile for ``df`` degrees of freedom (conservative lookup)."""
    if df < 1:
        return math.nan
    keys = [k for k in _T95 if k <= df]
    return _T95[max(keys)] if df <= 120 else 1.96


@dataclass
class MeanStat:
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
        """Fold another statistic into this one."""
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
