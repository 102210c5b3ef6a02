"""Fitted lenses (tuned, Jacobian) on the readout core, their artifacts and fitting.

A lens here is a :class:`hublens.hooks.lens.Lens` subclass; this package adds the fitted
kinds, the safetensors + JSON artifact format (:mod:`hublens.lenses.artifact`) and the
resolution of ``lens=`` names used by every lens analysis (:mod:`hublens.lenses.resolve`).
The fitted classes are imported on first use (``hublens.lenses.TunedLens``), so importing
this package reads no lens and needs no fit.
"""

from __future__ import annotations

from typing import Any

from hublens.lenses.artifact import LensArtifactError, ModelFingerprint
from hublens.lenses.resolve import LENS_NAMES, NamedLens, check_lens_spec, resolve_lenses

__all__ = [
    "LENS_NAMES",
    "JacobianLensView",
    "LensArtifactError",
    "ModelFingerprint",
    "NamedLens",
    "TunedLens",
    "check_lens_spec",
    "resolve_lenses",
]

_LAZY = {"TunedLens": "hublens.lenses.tuned", "JacobianLensView": "hublens.lenses.jacobian"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hublens.lenses' has no attribute {name!r}")
