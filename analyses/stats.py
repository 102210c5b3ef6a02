"""Compatibility re-export: streaming statistics live in :mod:`hublens.stats`."""

from hublens.stats import KeyedStat, MeanStat, Stat, SumStat, t95

__all__ = ["KeyedStat", "MeanStat", "Stat", "SumStat", "t95"]
