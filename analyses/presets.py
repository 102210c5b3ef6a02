"""The ``method=`` presets of the lens analyses: which option defaults each published method sets.

A preset (:data:`hublens.methods.METHODS`) fills in only the options the user left at ``None``
("not passed"); an option passed explicitly always wins. :func:`apply_preset` writes the
resolved values back onto the analysis and records ``method``, ``method_source`` and
``last_layer`` in its options. docs/methods.md documents every entry, option by option.

Where Wendler et al. have no method for an analysis (everything but the translation lens),
``method="wendler"`` takes the semantic hub paper's data handling with Wendler's lens (the
final norm at every layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hublens.methods import SOURCES, check_method

__all__ = ["LAST_LAYER", "PRESETS", "apply_preset"]

#: What the last scanned layer of the model reads under every lens setting (recorded).
LAST_LAYER = "output"

_NORM = {"hublens": True, "semantic-hub": False, "wendler": True}

#: analysis kind -> method -> option -> default.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "lens_probe": {m: {"final_norm": n, "token_policy": "first"} for m, n in _NORM.items()},
    "translation": {
        "hublens": {
            "final_norm": True,
            "token_policy": "first",
            "few_shot": 2,
            "demo_sampling": "cyclic",
            "skip_rule": "overlap",
            "drop_contained": True,
        },
        **{
            m: {
                "final_norm": _NORM[m],
                "token_policy": "prefix_sum",
                "few_shot": 4,
                "demo_sampling": "random",
                "skip_rule": "overlap",
                "drop_contained": True,
            }
            for m in ("semantic-hub", "wendler")
        },
    },
    "language_probability": {
        "hublens": {
            "final_norm": True,
            "aggregation": "per-text",
            "include_bos": False,
            "no_language": "drop",
            "token_table": "wordfreq",
        },
        **{
            m: {
                "final_norm": _NORM[m],
                "aggregation": "per-token",
                "include_bos": True,
                "no_language": "uniform",
                "token_table": "token-counts",
            }
            for m in ("semantic-hub", "wendler")
        },
    },
    "running_text": {
        "hublens": {"final_norm": True, "bos": "model", "word_rule": "whole-tokens"},
        **{
            m: {"final_norm": _NORM[m], "bos": "none", "word_rule": "single-token"}
            for m in ("semantic-hub", "wendler")
        },
    },
    "modality": {m: {"final_norm": n} for m, n in _NORM.items()},
}


def apply_preset(analysis: Any, kind: str, *, unset: Mapping[str, object] | None = None) -> None:
    """Fill the options ``analysis`` left at None from its method's preset; record the method.

    Args:
        analysis: An analysis with a ``method`` attribute and an ``options`` dict.
        kind: Its entry of :data:`PRESETS`.
        unset: Per option, the value that means "not passed" (default None).

    Raises:
        ValueError: ``analysis.method`` is not a known method.
    """
    method = check_method(analysis.method)
    unset = unset or {}
    for option, value in PRESETS[kind][method].items():
        if getattr(analysis, option) is unset.get(option):
            setattr(analysis, option, value)
    analysis.options.update(method=method, method_source=SOURCES[method], last_layer=LAST_LAYER)
