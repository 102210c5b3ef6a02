"""Parallel data for hublens: aligned items across data types, plus built-in data sets.

Example:
    >>> from hublens.data import ParallelData, load_builtin
    >>> words = load_builtin("multilingual-words")
    >>> words.pairs("en", "zh")[0]
    ('dog', '狗')
"""

from __future__ import annotations

from .builtin import (
    BUILTIN_DATASETS,
    ArithmeticGroups,
    arithmetic_groups,
    load_builtin,
)
from .parallel import ParallelData, ParallelDataError, ParallelItem

__all__ = [
    "BUILTIN_DATASETS",
    "ArithmeticGroups",
    "ParallelData",
    "ParallelDataError",
    "ParallelItem",
    "arithmetic_groups",
    "load_builtin",
]
