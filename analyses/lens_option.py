"""The ``lens=`` option every lens analysis shares: validation, resolution, provenance.

An analysis keeps its ``lens`` field (what the user passed) and calls :func:`init_lens` in
``__post_init__`` (after its method preset: ``lens=None`` follows ``final_norm``) and
:func:`lenses_for` in ``queries``/``setup`` (builds the lenses for the model once, before any
forward). Every lens reads the SAME captured states of the one forward pass; statistics are
kept per lens (their keys start with the lens name) and rows carry it in ``Row.lens``.

Recorded in ``options``: ``lens`` (the names, in order) and ``lenses`` (name -> the lens's
provenance: kind, fit corpus and its sha256, the fit command).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from hublens.lenses.resolve import (
    LensArg,
    NamedLens,
    check_lens_spec,
    default_lens_name,
    resolve_lenses,
)

__all__ = ["init_lens", "lenses_for", "with_lenses"]

_LOGIT = ("logit", "logit-raw")


def init_lens(analysis: Any, explicit_final_norm: bool | None) -> None:
    """Validate ``analysis.lens`` (no model needed) and record the lens names.

    A lone ``"logit"``/``"logit-raw"`` sets ``final_norm`` to match, so the recorded options
    agree with the lens that runs.

    Args:
        analysis: A lens analysis with ``lens``, ``final_norm`` (its preset applied) and
            ``options``.
        explicit_final_norm: ``final_norm`` as the user passed it (None: not passed).

    Raises:
        ValueError: ``final_norm`` (after the preset) is not a bool; see
            :func:`hublens.lenses.resolve.check_lens_spec`; or ``final_norm`` and a logit
            ``lens`` that contradict each other.
    """
    if not isinstance(analysis.final_norm, bool):
        raise ValueError(f"final_norm={analysis.final_norm!r}: pass True or False.")
    names = check_lens_spec(analysis.lens)
    if explicit_final_norm is not None and analysis.lens is not None:
        wanted = default_lens_name(bool(explicit_final_norm))
        clash = [n for n in names if n in _LOGIT and n != wanted]
        if clash:
            raise ValueError(
                f"final_norm={explicit_final_norm!r} contradicts lens={analysis.lens!r} "
                f"({clash[0]!r} is the logit lens with final_norm={clash[0] == 'logit'}); pass "
                "only lens=, e.g. lens=['logit', 'logit-raw'] for both."
            )
    if names in (["logit"], ["logit-raw"]):
        analysis.final_norm = names == ["logit"]
    if not names:
        names = [default_lens_name(bool(analysis.final_norm))]
    analysis.options["lens"] = names
    analysis.__dict__["_lens_cache"] = None


def lenses_for(analysis: Any, model: Any) -> list[NamedLens]:
    """The analysis's lenses built for ``model`` (once per model; provenance recorded).

    Raises:
        ValueError: A lens for another model, or a fitted lens that is not found.
    """
    cache = analysis.__dict__.get("_lens_cache")
    if cache is not None and cache[0] is model:
        return list(cache[1])
    named = resolve_lenses(model, analysis.lens, final_norm=bool(analysis.final_norm))
    analysis.__dict__["_lens_cache"] = (model, named)
    analysis.options["lens"] = [n.name for n in named]
    analysis.options["lenses"] = {n.name: n.provenance for n in named}
    return list(named)


def with_lenses(analyses: Sequence[Any], lens: LensArg) -> list[Any]:
    """Copies of ``analyses`` whose lens analyses read through ``lens`` (others unchanged).

    An analysis is a lens analysis when it has a ``lens`` field; the copy is made with
    :func:`dataclasses.replace`, so its options are validated again.

    Example:
        >>> with_lenses(default_analyses(data), ["logit", "tuned"])  # doctest: +SKIP
    """
    out = []
    for analysis in analyses:
        fields = (
            {f.name for f in dataclasses.fields(analysis)}
            if dataclasses.is_dataclass(analysis)
            else set()
        )
        if "lens" in fields:
            options = {k: v for k, v in analysis.options.items() if k not in ("lens", "lenses")}
            reset = {"final_norm": None} if "final_norm" in fields else {}  # lens= decides
            out.append(dataclasses.replace(analysis, lens=lens, options=options, **reset))
        else:
            out.append(analysis)
    return out
