"""Similarity presets (``method=``) and the continuation-cue rule.

The paper's code (``multilingual/similarity.py`` 54-69, ``augment_data``) appends a short cue
so that the last token reads as a continuation: ``"This represents"`` (no leading space) only
after an English text ending in ``"."`` or ``'."'``, and ``"这代表了"`` only after ``"。"``; other
texts are left as they are. hublens's default follows the same rule with a leading space for
English (``". This represents"``, as running English text is written). docs/methods.md lists
every option of each preset and why hublens's default differs where it does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from hublens.methods import SOURCES, Method

__all__ = ["DEFAULT_CUES", "PRESETS", "CueRule", "LastLayer", "append_cue", "preset_source"]

#: ``"sentence-final"``: the cue only after sentence-final punctuation (:data:`SENTENCE_ENDS`);
#: ``"always"``: after every text of the type.
CueRule = Literal["sentence-final", "always"]

#: ``"output"``: at the model's last layer read the final-normed output state (transformers'
#: ``last_hidden_state``, as the paper's code); ``"residual"``: the raw residual stream there.
LastLayer = Literal["output", "residual"]

#: hublens's default cues (appended by the ``"sentence-final"`` rule).
DEFAULT_CUES: dict[str, str] = {"en": " This represents", "zh": "这代表了"}

#: Text endings after which the ``"sentence-final"`` rule appends a type's cue (others: ``"."``
#: and ``'."'``, the paper's English rule).
SENTENCE_ENDS: dict[str, tuple[str, ...]] = {"zh": ("。",), "ja": ("。",)}
_DEFAULT_ENDS = (".", '."')

#: The option values each preset gives the options a user did not pass.
PRESETS: dict[str, dict[str, Any]] = {
    "hublens": {
        "cues": DEFAULT_CUES,
        "cue_rule": "sentence-final",
        "baseline": "per-item",
        "last_layer": "output",
        "group_rule": "per-item",
    },
    "semantic-hub": {
        "cues": {"en": "This represents", "zh": "这代表了"},
        "cue_rule": "sentence-final",
        "baseline": "global",
        "last_layer": "output",
        "group_rule": "pooled",
    },
}
PRESETS["wendler"] = PRESETS["semantic-hub"]  # Wendler et al. have no similarity method


def preset_source(method: Method) -> str:
    """What a preset's similarity options come from (recorded as ``method_source``)."""
    if method == "wendler":
        return f"{SOURCES['semantic-hub']} (Wendler et al. have no similarity method)"
    return SOURCES[method]


def append_cue(text: str, data_type: str, cues: Mapping[str, str], rule: CueRule) -> str:
    """``text`` with its type's cue appended where ``rule`` says so.

    Example:
        >>> append_cue("The cat sleeps.", "en", DEFAULT_CUES, "sentence-final")
        'The cat sleeps. This represents'
        >>> append_cue("flower", "en", DEFAULT_CUES, "sentence-final")
        'flower'
    """
    cue = cues.get(data_type, "")
    if not cue:
        return text
    if rule == "always" or text.endswith(SENTENCE_ENDS.get(data_type, _DEFAULT_ENDS)):
        return text + cue
    return text
