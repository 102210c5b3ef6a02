"""Token classes for marking lens-grid cells: "is this top-1 token target-language / English?".

A mark is any ``Container[int]`` of token ids (a plain ``set`` works). :class:`TokenClass` is a
lazy one: it decides membership by decoding the id and testing the text with a script rule, so
a 262k-token vocabulary is never decoded up front. The rules are deliberately simple and stated:
a token belongs to a script when at least one of its characters is in that script's Unicode
blocks and every letter in it is (digits, spaces and punctuation are ignored); ``"latin"``
needs two or more ASCII letters (so single letters and byte pieces do not count as English).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Mapping
from typing import Any

#: Unicode ranges per script rule.
_SCRIPTS: dict[str, str] = {
    "cjk": "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
    "hangul": "\uac00-\ud7af\u1100-\u11ff",
    "cyrillic": "\u0400-\u04ff",
    "latin": "A-Za-z",
}
#: Which script rule marks a data type (a language code or a notation) as the target.
TYPE_SCRIPTS: dict[str, str] = {
    "zh": "cjk",
    "ja": "cjk",
    "ko": "hangul",
    "ru": "cyrillic",
    "numeral": "digits",
    "python": "latin",
}


def _rule(script: str) -> Callable[[str], bool]:
    if script == "digits":
        return lambda text: bool(text.strip()) and text.strip().isdigit()
    if script not in _SCRIPTS:
        raise ValueError(f"script={script!r}: choose one of {', '.join([*_SCRIPTS, 'digits'])}.")
    inside = re.compile(f"[{_SCRIPTS[script]}]")

    def test(text: str) -> bool:
        chars = [c for c in text if c.isalpha()]
        if not chars or not all(inside.match(c) for c in chars):
            return False
        return len(chars) >= 2 if script == "latin" else True

    return test


class TokenClass(Container[int]):
    """Token ids whose decoded text passes a script rule, decided lazily and cached.

    Args:
        tokenizer: The model's tokenizer (``decode``).
        script: ``"cjk"``, ``"hangul"``, ``"cyrillic"``, ``"latin"`` or ``"digits"``.

    Example:
        >>> chinese = TokenClass(model.tokenizer, "cjk")  # doctest: +SKIP
        >>> model.tokenizer.encode("花", add_special_tokens=False)[0] in chinese  # doctest: +SKIP
        True
    """

    def __init__(self, tokenizer: Any, script: str) -> None:
        self.tokenizer = tokenizer
        self.script = script
        self._test = _rule(script)
        self._seen: dict[int, bool] = {}

    def __contains__(self, token_id: object) -> bool:
        if isinstance(token_id, bool) or not isinstance(token_id, int):
            return False
        if token_id not in self._seen:
            self._seen[token_id] = self._test(self.tokenizer.decode([token_id]))
        return self._seen[token_id]

    def __repr__(self) -> str:
        return f"TokenClass(script={self.script!r})"


def script_marks(model: Any, target_type: str | None = None) -> Mapping[str, Container[int]]:
    """The default marks: the target type's script and the dominant language's (Latin) words.

    Args:
        model: A HubModel (its tokenizer and ``dominant_language``).
        target_type: The data type of the text (``"zh"``, ``"numeral"``, ...); no target mark
            when it has no rule in :data:`TYPE_SCRIPTS` or is None.

    Returns:
        Mark name -> token class, e.g. ``{"target: zh": ..., "dominant: en": ...}``.
    """
    marks: dict[str, Container[int]] = {}
    dominant = str(getattr(model, "dominant_language", "en"))
    script = TYPE_SCRIPTS.get(target_type or "")
    if script is not None and not (script == "latin" and dominant == "en"):
        marks[f"target: {target_type}"] = TokenClass(model.tokenizer, script)
    if dominant == "en":
        marks["dominant: en"] = TokenClass(model.tokenizer, "latin")
    return marks
