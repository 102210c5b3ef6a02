"""Method presets: which published method an analysis's defaults follow.

Every analysis takes ``method=`` (one of :data:`METHODS`); ``semantic_hub_scan(..., method=...)``
passes it to every analysis it builds. A preset only sets the defaults of options the user did not
pass explicitly; the options actually used, the method and its source are recorded in the result
(``options[name]["method"]``, ``["method_source"]``). docs/methods.md documents each preset, option
by option, and what a preset cannot reproduce offline.

- ``"hublens"``: hublens's own defaults (final norm at every layer, per-item baselines, ...).
- ``"semantic-hub"``: the paper's code (Wu et al., ICLR 2025; github.com/ZhaofengWu/semantic-hub).
- ``"wendler"``: Wendler et al. (2024), "Do Llamas Work in English?"
  (github.com/epfl-dlab/llm-latent-language).
"""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["hublens", "semantic-hub", "wendler"]

#: The valid values of ``method=``.
METHODS: tuple[str, ...] = get_args(Method)

#: Where each preset comes from (recorded in results).
SOURCES: dict[str, str] = {
    "hublens": "hublens defaults (docs/methods.md)",
    "semantic-hub": "github.com/ZhaofengWu/semantic-hub @ d386fe7",
    "wendler": "github.com/epfl-dlab/llm-latent-language @ d0e4f29",
}


def check_method(method: object, *, argument: str = "method") -> Method:
    """Validate a ``method=`` value and return it.

    Raises:
        ValueError: Not one of :data:`METHODS` (the message lists them).
    """
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"{argument}={method!r}: choose one of {', '.join(map(repr, METHODS))}.")
    return method  # type: ignore[return-value]
