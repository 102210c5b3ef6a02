"""Which analyses a scan runs when none are named, per built-in data set.

The defaults reproduce the paper's experiment for each built-in data set at a size that
finishes in minutes on a 2-core CPU; pass ``analyses=[...]`` to change sizes or options (every
lens analysis takes ``max_items``).
"""

from __future__ import annotations

from typing import Any

from hublens.analyses.arithmetic_probe import ArithmeticProbe
from hublens.analyses.code_probes import CodeArgsProbe, CodeListProbe
from hublens.analyses.language import LanguageProbability
from hublens.analyses.running_text import ChineseRunningText
from hublens.analyses.semantics_probe import SemanticsRoleProbe
from hublens.analyses.similarity import Similarity
from hublens.analyses.translation_lens import TranslationLens
from hublens.analysis import Analysis
from hublens.methods import check_method
from hublens.registry import register_defaults

#: Items read by the default lens analyses (the full vocabulary is normalised per state, so
#: the lens costs more per item than the similarity).
DEFAULT_LENS_ITEMS = 100
#: Texts per language read at every position by the default language-probability analysis.
DEFAULT_LANGUAGE_ITEMS = 40


@register_defaults
def default_analyses(data: Any, *, method: str = "hublens") -> list[Analysis]:
    """The paper's analyses for a built-in data set; similarity for a user's own data.

    Args:
        data: The ParallelData (its ``builtin`` marker selects the built-in defaults).
        method: The method every analysis follows (:mod:`hublens.methods`; docs/methods.md).

    Returns:
        Fresh analysis objects.

    Example:
        >>> from hublens.data import load_builtin
        >>> [a.name for a in default_analyses(load_builtin("arithmetic"))]
        ['similarity', 'similarity_grouped', 'arithmetic_lens']
    """
    m = check_method(method)
    name = getattr(data, "builtin", None) or ""  # identity set by load_builtin, not a name
    types = tuple(getattr(data, "types", ()))
    if name == "arithmetic":
        return [
            Similarity(
                method=m, name="similarity", pairs=[("numeral", "words"), ("numeral", "zh")]
            ),
            Similarity(
                method=m, name="similarity_grouped", pairs=[("numeral", "words")], group_by="result"
            ),
            ArithmeticProbe(method=m, max_items=None),
        ]
    if name == "semantics":
        return [
            Similarity(method=m, name="similarity", cues={}),
            SemanticsRoleProbe(method=m, max_items=None),
        ]
    if name == "multilingual-sentences":
        return [
            Similarity(method=m, name="similarity"),
            Similarity(method=m, name="similarity_centered", centered=True),
            LanguageProbability(
                method=m,
                types=[t for t in ("en", "zh") if t in types] or None,
                max_items=DEFAULT_LANGUAGE_ITEMS,
            ),
            ChineseRunningText(method=m),
        ]
    if name == "multilingual-words":
        return [
            Similarity(method=m, name="similarity", cues={}),
            TranslationLens(method=m, source="fr", target="zh", max_items=DEFAULT_LENS_ITEMS),
        ]
    if name == "code-lists":
        return [CodeListProbe(method=m, max_items=DEFAULT_LENS_ITEMS)]
    if name == "code-args":
        return [CodeArgsProbe(method=m, max_items=DEFAULT_LENS_ITEMS)]
    return [Similarity(method=m, name="similarity")]
