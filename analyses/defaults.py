"""Which analyses a scan runs when none are named, per built-in data set."""

from __future__ import annotations

from typing import Any

from hublens.analyses.base import Analysis
from hublens.analyses.similarity import Similarity


def default_analyses(data: Any) -> list[Analysis]:
    """The paper's analyses for a built-in data set; similarity for a user's own data.

    Args:
        data: The ParallelData (its ``name`` selects the built-in defaults).

    Returns:
        Fresh analysis objects.
    """
    name = getattr(data, "name", "")
    if name == "arithmetic":
        return [
            Similarity(name="similarity", pairs=[("numeral", "words"), ("numeral", "zh")]),
            Similarity(name="similarity_grouped", pairs=[("numeral", "words")], group_by="result"),
        ]
    if name == "semantics":
        return [Similarity(name="similarity", cues={})]
    if name == "multilingual-sentences":
        return [
            Similarity(name="similarity"),
            Similarity(name="similarity_centered", centered=True),
        ]
    return [Similarity(name="similarity")]
