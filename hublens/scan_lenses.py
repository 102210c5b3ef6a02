"""Which lenses a command-line scan reads through (``hublens scan --lens``), and the record of it.

Without ``--lens`` the scan reads through the method's logit lens (``"logit"`` for hublens and
Wendler et al., ``"logit-raw"`` for the semantic hub paper) and, when a tuned lens for the model
exists (shipped with the package or fitted into the cache: :func:`hublens.lenses.store.find_lens`),
through the tuned lens too, side by side. It never fits one: a missing tuned lens is recorded in
the provenance (with the command that would fit it) and the scan goes on with the logit lens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hublens.lenses.resolve import check_lens_spec, default_lens_name

__all__ = ["AUTO", "analyses_with_lenses", "parse_lens_option", "scan_lenses"]

#: The ``--lens`` value that means "the method's logit lens, plus tuned when it exists".
AUTO = "auto"


def parse_lens_option(text: str | None) -> list[str] | None:
    """``--lens`` as a list of lens names/folders (None: :data:`AUTO`), validated without a model.

    Raises:
        ValueError: An unknown name (the message lists the valid ones), a repeated one, or a
            folder that is not a lens.
    """
    if text is None or text.strip() == AUTO:
        return None
    names = [part.strip() for part in text.split(",")]
    if not all(names):
        raise ValueError(f"--lens {text!r}: empty name in the comma-separated list.")
    check_lens_spec(names, argument="--lens")
    return names


def method_lens(method: str | None) -> str:
    """The logit lens a method reads through (``"logit"`` or ``"logit-raw"``)."""
    from hublens.analyses.presets import PRESETS
    from hublens.methods import check_method

    m = check_method(method or "hublens")
    return default_lens_name(bool(PRESETS["lens_probe"][m]["final_norm"]))


def scan_lenses(
    model: Any, requested: Sequence[str] | None, method: str | None
) -> tuple[list[str], dict[str, Any]]:
    """The lenses to read through and the provenance record saying why.

    Args:
        model: The HubModel.
        requested: :func:`parse_lens_option`'s result (None: :data:`AUTO`).
        method: The scan's method.

    Returns:
        ``(lenses, record)``; the record holds ``requested``, ``ran`` and, for AUTO, whether a
        tuned lens was found (its folder) or not (the command that would fit one).
    """
    if requested is not None:
        return list(requested), {"requested": list(requested), "ran": list(requested)}
    lenses = [method_lens(method)]
    record: dict[str, Any] = {"requested": AUTO}
    try:
        from hublens.lenses.store import find_lens, missing_lens_message
    except ImportError:  # a hublens without fitted lenses
        record["tuned"] = "not available in this hublens"
    else:
        folder = find_lens(model, "tuned")
        if folder is not None:
            lenses.append("tuned")
            record["tuned"] = f"found: {folder}"
        else:
            record["tuned"] = "not found, not fitted (the scan never waits for a fit). " + (
                missing_lens_message(model, "tuned")
            )
    record["ran"] = list(lenses)
    return lenses, record


def analyses_with_lenses(
    data: Any, names: Sequence[str] | None, method: str | None, lenses: Sequence[str]
) -> list[Any] | None:
    """The scan's analyses (``names`` or the data's defaults) reading through ``lenses``.

    Returns None when the lenses are just the method's logit lens: the scan then builds its
    analyses itself, exactly as without ``--lens``.
    """
    if list(lenses) == [method_lens(method)]:
        return None
    from hublens.analyses.lens_option import with_lenses
    from hublens.registry import default_analyses, resolve_analyses

    made = (
        resolve_analyses(list(names), method=method)
        if names is not None
        else default_analyses(data, method=method)
    )
    return with_lenses(made, list(lenses))
