"""The arithmetic data set of the paper's experiment 2, generated in code.

Generation rule (the one in the authors' public code, ``arithmetic/logit_lens.py``): for
every *target* ``t`` in 1..9,

* additions ``o+t`` for every other operand ``o`` with ``1 <= o`` and ``o + t < 100``
  (``99 - t`` items per target, 846 in all), and
* multiplications ``o*t`` for every ``o >= 1`` with ``o * t < 100``
  (``ceil(100 / t) - 1`` items per target, 277 in all),

1,123 items in all, ordered by target, additions before multiplications, then by ``o``.
The numeral form writes the other operand first (``"3+2"``: other 3, target 2) so that
the logit-lens prompt ``"5=3+"`` asks for the target.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from ..parallel import ParallelData, ParallelDataError
from ._resources import mark_builtin

TARGETS: tuple[int, ...] = tuple(range(1, 10))
LIMIT = 100
N_ADDITIONS = 846
N_MULTIPLICATIONS = 277
N_ITEMS = N_ADDITIONS + N_MULTIPLICATIONS

_OP_NAMES = {"+": "add", "*": "mul"}
_EN_OPS = {"+": "plus", "*": "times"}
_ZH_OPS = {"+": "加", "*": "乘"}

EXACT_MATCH = "exact_match"
SAME_RESULT = "same_result"
DIFFERENT_RESULT = "different_result"
Group = Literal["exact_match", "same_result", "different_result"]
GROUPS: tuple[str, ...] = (EXACT_MATCH, SAME_RESULT, DIFFERENT_RESULT)


def arithmetic_problems() -> list[tuple[str, int, int, int]]:
    """Returns ``(op, other, target, result)`` for every item, in data-set order."""
    problems = []
    for target in TARGETS:
        for other in range(1, LIMIT - target):
            problems.append(("+", other, target, other + target))
        for other in range(1, -(-LIMIT // target)):
            problems.append(("*", other, target, other * target))
    return problems


@lru_cache(maxsize=1)
def _inflect_engine() -> Any:
    import inflect

    return inflect.engine()


@lru_cache(maxsize=128)
def _english(number: int) -> str:
    return str(_inflect_engine().number_to_words(number))


@lru_cache(maxsize=128)
def _chinese(number: int) -> str:
    import cn2an

    return str(cn2an.an2cn(number))


@lru_cache(maxsize=1)
def _arithmetic_records() -> tuple[dict[str, Any], ...]:
    records = []
    for op, other, target, result in arithmetic_problems():
        records.append(
            {
                "id": f"{_OP_NAMES[op]}-{other}-{target}",
                "numeral": f"{other}{op}{target}",
                "words": f"{_english(other)} {_EN_OPS[op]} {_english(target)}",
                "zh": f"{_chinese(other)}{_ZH_OPS[op]}{_chinese(target)}",
                "meta": {
                    "op": op,
                    "operands": [other, target],
                    "result": result,
                    "lens_prompt": f"{result}={other}{op}",
                    "lens_answer": target,
                },
            }
        )
    return tuple(records)


def arithmetic_expressions() -> ParallelData:
    """Returns the 1,123 arithmetic expressions in three notations.

    Types: ``"numeral"`` (``"3+2"``, ``"3*2"``), ``"words"`` (``"three plus two"``,
    ``"three times two"``, numbers spelled by ``inflect``, e.g. ``"twenty-one"``) and
    ``"zh"`` (``"三加二"``, ``"三乘二"``, numbers by ``cn2an``). Meta per item: ``op``
    (``"+"``/``"*"``), ``operands`` ``[other, target]``, ``result``, and the logit-lens
    prompt ``lens_prompt`` (``"5=3+"``) with its expected answer ``lens_answer`` (2).
    Requires the ``inflect`` and ``cn2an`` packages.
    """
    data = ParallelData.from_records(list(_arithmetic_records()), name="arithmetic")
    if len(data) != N_ITEMS:  # pragma: no cover - guarded by the tests
        raise ParallelDataError(f"arithmetic generator produced {len(data)} items, not {N_ITEMS}")
    return mark_builtin(data, "arithmetic")


@dataclass(frozen=True)
class ArithmeticGroups:
    """Pair groups for the grouped similarity comparison of experiment 2.

    For items ``i`` (in one notation) and ``j`` (in the other): ``exact_match`` when
    ``i == j``, ``same_result`` when ``i != j`` but both evaluate to the same number,
    ``different_result`` otherwise.

    Attributes:
        results: The value of every item, in data-set order.
        ops: The operator of every item (``"+"`` or ``"*"``).
    """

    results: tuple[int, ...]
    ops: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.results)

    def group(self, i: int, j: int) -> Group:
        """Returns the group of the pair ``(i, j)``."""
        if i == j:
            return "exact_match"
        if self.results[i] == self.results[j]:
            return "same_result"
        return "different_result"

    def pairs(self, group: str) -> Iterator[tuple[int, int]]:
        """Yields every index pair ``(i, j)`` in ``group``, row by row.

        Raises:
            ParallelDataError: If ``group`` is not one of :data:`GROUPS`.
        """
        if group not in GROUPS:
            raise ParallelDataError(f"unknown group {group!r}; use one of {', '.join(GROUPS)}.")
        n = len(self.results)
        for i in range(n):
            for j in range(n):
                if self.group(i, j) == group:
                    yield i, j

    def masks(self) -> dict[str, Any]:
        """Returns one ``(n, n)`` boolean numpy array per group (requires numpy)."""
        import numpy as np

        results = np.asarray(self.results)
        same = results[:, None] == results[None, :]
        eye = np.eye(len(results), dtype=bool)
        return {
            EXACT_MATCH: eye,
            SAME_RESULT: same & ~eye,
            DIFFERENT_RESULT: ~same,
        }


def arithmetic_groups(data: ParallelData) -> ArithmeticGroups:
    """Builds the exact-match / same-result / different-result grouping for ``data``.

    Args:
        data: Arithmetic data (or any subset of it) whose meta has ``result`` and ``op``.

    Raises:
        ParallelDataError: If an item lacks ``meta["result"]`` or ``meta["op"]``.
    """
    results = tuple(int(r) for r in data.meta_column("result"))
    ops = tuple(str(o) for o in data.meta_column("op"))
    return ArithmeticGroups(results=results, ops=ops)
