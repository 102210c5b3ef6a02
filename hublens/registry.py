"""Analyses by name: the registry the scan resolves ``analyses=["similarity", ...]`` through.

Analyses register themselves (:func:`register_analysis`, usually as a class decorator) when
their module is imported; the core never imports them by name. The built-in analyses live in
the plugin package :data:`BUILTIN_PACKAGE`, which the registry imports once, by name, the first
time a name or the defaults are looked up. Third-party analyses register the same way.

Example:
    >>> from hublens.registry import analysis_names, make_analysis
    >>> "similarity" in analysis_names()
    True
    >>> make_analysis("similarity").name
    'similarity'
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from hublens.analysis import Analysis

__all__ = [
    "BUILTIN_PACKAGE",
    "analysis_names",
    "default_analyses",
    "make_analysis",
    "register_analysis",
    "register_defaults",
    "resolve_analyses",
]

#: The package whose import registers the built-in analyses.
BUILTIN_PACKAGE = "hublens.analyses"

F = TypeVar("F", bound=Callable[..., Analysis])

_FACTORIES: dict[str, Callable[..., Analysis]] = {}
_DEFAULTS: list[Callable[..., list[Analysis]]] = []
_loaded = False


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        importlib.import_module(BUILTIN_PACKAGE)
        _loaded = True


def register_analysis(name: str, factory: F | None = None) -> Any:
    """Make ``name`` resolve to ``factory(**options)`` (a class or a function).

    Usable as a decorator (``@register_analysis("similarity")``) or called directly.

    Args:
        name: The name users pass in ``analyses=[...]``.
        factory: Builds a fresh :class:`~hublens.analysis.Analysis`; None returns a decorator.

    Returns:
        The factory (or a decorator returning it).

    Raises:
        ValueError: ``name`` is empty or already taken by another factory.
    """

    def add(fn: F) -> F:
        if not isinstance(name, str) or not name:
            raise ValueError(f"register_analysis(name={name!r}): pass a non-empty string.")
        if name in _FACTORIES and _FACTORIES[name] is not fn:
            raise ValueError(
                f"register_analysis({name!r}): the name is taken by {_FACTORIES[name]!r}; "
                "pick another name."
            )
        _FACTORIES[name] = fn
        return fn

    return add if factory is None else add(factory)


def register_defaults(fn: Callable[..., list[Analysis]]) -> Callable[..., list[Analysis]]:
    """Register the function that picks a data set's analyses when none are named.

    It is called as ``fn(data)``, or ``fn(data, method=...)`` when a scan names a method
    (:mod:`hublens.methods`). The last one registered wins (a decorator; returns ``fn``).
    """
    _DEFAULTS.append(fn)
    return fn


def analysis_names() -> list[str]:
    """Every registered analysis name, sorted."""
    _load_builtin()
    return sorted(_FACTORIES)


def make_analysis(name: str, **options: Any) -> Analysis:
    """A fresh analysis for a registered name, with options passed to its factory.

    Raises:
        ValueError: Unknown name (the message lists the valid ones).
    """
    _load_builtin()
    if name not in _FACTORIES:
        raise ValueError(
            f"analyses: unknown analysis name {name!r}; choose from "
            f"{', '.join(sorted(_FACTORIES))}, or pass an Analysis object "
            "(e.g. hublens.analyses.Similarity(centered=True)) for other options."
        )
    return _FACTORIES[name](**options)


def resolve_analyses(analyses: Any, *, method: str | None = None) -> list[Analysis]:
    """Names and Analysis objects, mixed, as analysis objects (names made fresh).

    Args:
        analyses: A sequence of names and Analysis objects, e.g.
            ``["similarity", TranslationLens(source="de")]`` (typed loosely: this is the
            check that turns anything else into a clear error).
        method: Passed as ``method=`` to every analysis made from a name (objects keep their
            own); None passes nothing.

    Raises:
        ValueError: A bare string instead of a list, an unknown name, or anything else than a
            name or an Analysis.
    """
    if isinstance(analyses, (str, Analysis)):
        raise ValueError(f"analyses={analyses!r}: pass a list, e.g. analyses=[{analyses!r}].")
    out = []
    for k, spec in enumerate(analyses):
        if isinstance(spec, Analysis):
            out.append(spec)
        elif isinstance(spec, str):
            out.append(make_analysis(spec, **({} if method is None else {"method": method})))
        else:
            raise ValueError(
                f"analyses[{k}]={spec!r}: pass an analysis name ({', '.join(analysis_names())}) "
                "or an Analysis object."
            )
    return out


def default_analyses(data: Any, *, method: str | None = None) -> list[Analysis]:
    """The registered defaults for a data set (the paper's analyses for a built-in one).

    Args:
        data: The data set.
        method: The method every default analysis follows (:mod:`hublens.methods`); None:
            each analysis's own default.

    Raises:
        RuntimeError: No defaults were registered.
    """
    _load_builtin()
    if not _DEFAULTS:
        raise RuntimeError(f"No default analyses registered (is {BUILTIN_PACKAGE} installed?).")
    if method is None:
        return _DEFAULTS[-1](data)
    return _DEFAULTS[-1](data, method=method)
