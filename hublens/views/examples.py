"""Which texts of a data set get a lens grid in a scan report, by a stated rule.

Per data set, at most :data:`MAX_GRIDS` short texts (the first item's, cut at its first line and
:data:`MAX_CHARS` characters):

* each type with a non-Latin script rule (``zh``, ``ja``, ``ko``, ``ru``): its first text, with
  that script marked as the target;
* data whose items carry a logit-lens prompt (``meta["lens_prompt"]``, the arithmetic data's
  ``"5=3+"``): the first prompt, digits marked as the target;
* otherwise (code, logical forms, English): the first type's first text.

The dominant language's words are always marked (:func:`hublens.views.marks.script_marks`).
"""

from __future__ import annotations

from typing import Any

from hublens.views.lens_grid import LensGrid, lens_grid
from hublens.views.marks import TYPE_SCRIPTS, script_marks

#: Grids per data set in a scan report.
MAX_GRIDS = 2
#: Longest example text, in characters.
MAX_CHARS = 60


def _short(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    first = lines[0].rstrip() if lines else text
    return first[:MAX_CHARS]


def example_texts(data: Any) -> list[tuple[str, str, str | None]]:
    """``(label, text, target type)`` of the grids for ``data``, by the module's rule."""
    out: list[tuple[str, str, str | None]] = []
    if len(data) == 0:
        return out
    item = data[0]
    try:
        prompt = data.meta_column("lens_prompt")[0]
    except (KeyError, ValueError):
        prompt = None
    if isinstance(prompt, str) and prompt:
        out.append((f"{data.name} · lens prompt", prompt, "numeral"))
    for data_type in data.types:
        script = TYPE_SCRIPTS.get(data_type)
        if script not in (None, "latin", "digits"):
            out.append((f"{data.name} · {data_type}", _short(item[data_type]), data_type))
    if not out:
        first = data.types[0]
        out.append((f"{data.name} · {first}", _short(item[first]), first))
    return out[:MAX_GRIDS]


def example_grids(model: Any, data: Any, *, lens: Any = None) -> list[LensGrid]:
    """The report's grids for one data set (see the module docstring for the rule)."""
    return [
        lens_grid(model, text, lens=lens, marks=script_marks(model, kind), label=label)
        for label, text, kind in example_texts(data)
    ]
