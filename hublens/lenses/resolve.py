"""``lens=``: names, folders and Lens objects resolved to the lenses an analysis reads through.

Every lens analysis takes ``lens=``, one of these or a list of them (names unique):

- ``"logit"``: the logit lens with the model's final norm at every layer (hublens's default);
- ``"logit-raw"``: no norm except at the model's last layer (the semantic hub paper's choice);
- ``"tuned"``: the model's tuned lens (:class:`hublens.lenses.tuned.TunedLens`, found by
  :mod:`hublens.lenses.store`);
- ``"jacobian"``: the model's Jacobian lens (:class:`hublens.lenses.jacobian.JacobianLensView`);
- a lens folder (``lens.json`` + ``lens.safetensors``; its recorded kind picks the class);
- a :class:`~hublens.hooks.lens.Lens` a user built (named by its ``name`` attribute, else its
  ``kind``, else its class name).

``None`` follows the analysis's ``final_norm``: ``"logit"`` when True, ``"logit-raw"`` when
False (the method presets set it). :func:`check_lens_spec` validates what can be checked without
a model (names, duplicates, folders); :func:`resolve_lenses` builds the lenses for a model and
refuses a lens fitted on another model, both before any forward pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from hublens.hooks.lens import Lens, LogitLens

__all__ = [
    "LENS_NAMES",
    "LensArg",
    "NamedLens",
    "check_lens_spec",
    "default_lens_name",
    "lens_provenance",
    "resolve_lenses",
]

#: The lens names ``lens=`` accepts (besides folders and Lens objects).
LENS_NAMES = ("logit", "logit-raw", "tuned", "jacobian")

#: One lens: a name, a lens folder, or a Lens object.
LensSpec = Union[str, "os.PathLike[str]", Lens]  # noqa: UP007 - a runtime alias
#: What ``lens=`` takes: one lens, several, or None (the analysis's ``final_norm``).
LensArg = Union[LensSpec, Sequence[LensSpec], None]  # noqa: UP007 - a runtime alias


@dataclass(frozen=True)
class NamedLens:
    """A lens with the name its result rows carry and what it is made of.

    Attributes:
        name: The ``lens`` column of the rows (``"logit"``, ``"tuned"``, a user's name, ...).
        lens: The lens.
        provenance: JSON-ready record: ``kind``, and for fitted lenses the fit corpus, its
            sha256, the fit command (the lens's own ``provenance()``).
    """

    name: str
    lens: Lens = field(repr=False)
    provenance: dict[str, Any]


def default_lens_name(final_norm: bool) -> str:
    """The lens ``lens=None`` means: ``"logit"`` with the final norm, else ``"logit-raw"``."""
    return "logit" if final_norm else "logit-raw"


def _as_list(lens: Any) -> list[Any]:
    if lens is None:
        return []
    if isinstance(lens, (str, os.PathLike, Lens)):
        return [lens]
    if isinstance(lens, Sequence):
        items = list(lens)
        if not items:
            raise ValueError("lens=[]: pass at least one lens, or None for the method's lens.")
        return items
    raise TypeError(
        f"lens={lens!r}: pass a lens name ({', '.join(LENS_NAMES)}), a lens folder, a Lens "
        "object, or a list of them."
    )


def _spec_name(spec: Any) -> str:
    """The name a spec's rows carry (folders: their recorded kind)."""
    if isinstance(spec, Lens):
        for attribute in ("name", "kind"):  # a user's name, else a fitted lens's kind
            value = getattr(spec, attribute, None)
            if isinstance(value, str) and value:
                return value
        return type(spec).__name__
    if isinstance(spec, str) and spec in LENS_NAMES:
        return spec
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if isinstance(spec, os.PathLike) or os.sep in text or Path(text).exists():
            from hublens.lenses.artifact import read_config

            return str(read_config(text)["kind"])  # LensArtifactError: not a lens folder
        hint = " (several lenses: pass a list, e.g. lens=['logit', 'tuned'])" if "," in text else ""
        raise ValueError(
            f"lens={spec!r} is not a lens name; valid names: {', '.join(LENS_NAMES)}, or a lens "
            f"folder path, or a hublens.hooks.Lens object{hint}."
        )
    raise TypeError(
        f"lens entry {spec!r} ({type(spec).__name__}): pass a lens name ({', '.join(LENS_NAMES)}),"
        " a lens folder, or a Lens object."
    )


def check_lens_spec(lens: Any, *, argument: str = "lens") -> list[str]:
    """Validate ``lens=`` without a model: known names, lens folders, unique names.

    Args:
        lens: What the user passed.
        argument: How to name it in errors.

    Returns:
        The lens names, in order (empty for None).

    Raises:
        ValueError: An unknown name (the message lists the valid ones), duplicate names, an
            empty list, or a folder that is not a lens (``LensArtifactError``).
        TypeError: Anything else than names, paths and Lens objects.
    """
    names = [_spec_name(spec) for spec in _as_list(lens)]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"{argument}={lens!r} names the lens(es) {repeated} more than once; each lens needs a "
            "distinct name (give Lens objects distinct `name` attributes)."
        )
    return names


def lens_provenance(lens: Lens) -> dict[str, Any]:
    """A lens's JSON-ready record: its ``provenance()`` if it has one, else kind and class."""
    record = getattr(lens, "provenance", None)
    if callable(record):
        return dict(record())
    return {
        "kind": str(getattr(lens, "kind", "custom")),
        "class": f"{type(lens).__module__}.{type(lens).__qualname__}",
        "final_norm": bool(lens.final_norm),
        "fit": None,
    }


def _logit(model: Any, final_norm: bool) -> NamedLens:
    lens = LogitLens.from_model(model, final_norm=final_norm)
    record = {
        "kind": default_lens_name(final_norm),
        "final_norm": "every layer" if final_norm else "last layer only",
        "fit": None,
    }
    return NamedLens(default_lens_name(final_norm), lens, record)


def _fitted(model: Any, kind: str, folder: str | os.PathLike[str] | None) -> Lens:
    """A tuned or Jacobian lens of ``model``: from ``folder``, or found by the store."""
    if kind == "tuned":
        from hublens.lenses.tuned import TunedLens

        return TunedLens.for_model(model) if folder is None else TunedLens.load(folder, model)
    if kind == "jacobian":
        from hublens.lenses.jacobian import JacobianLensView

        if folder is None:
            return JacobianLensView.for_model(model)
        return JacobianLensView.load(folder, model)
    raise ValueError(f"lens kind {kind!r}: known kinds are 'tuned' and 'jacobian'.")


def _check_layers(named: NamedLens, model: Any) -> None:
    n = getattr(named.lens, "n_layers", None)
    if n is not None and int(n) != int(model.n_layers):
        raise ValueError(
            f"lens {named.name!r} was built for {n} layers; this model has {model.n_layers}. "
            "Use a lens built or fitted on this model."
        )
    d = getattr(getattr(named.lens, "unembed", None), "d_model", None)
    if d is not None and int(d) != int(model.d_model):
        raise ValueError(
            f"lens {named.name!r} reads rows of width {d}; this model has d_model="
            f"{model.d_model}. Use a lens built on this model."
        )


def resolve_lenses(model: Any, lens: LensArg, *, final_norm: bool | None = None) -> list[NamedLens]:
    """The lenses ``lens=`` names, built for ``model`` (all checks before any forward).

    Args:
        model: The HubModel.
        lens: A lens name (:data:`LENS_NAMES`), a lens folder, a Lens object, a list of these,
            or None (``"logit"`` if ``final_norm`` else ``"logit-raw"``).
        final_norm: The analysis's final-norm setting, used when ``lens`` is None (None: True).

    Returns:
        One :class:`NamedLens` per entry, in order, names unique.

    Raises:
        ValueError: See :func:`check_lens_spec`; a lens for another model (d_model, n_layers,
            d_vocab or the recorded weights' hash differ); a fitted lens that is not found.

    Example:
        >>> [n.name for n in resolve_lenses(model, ["logit", "tuned"])]  # doctest: +SKIP
        ['logit', 'tuned']
    """
    if lens is None:
        return [_logit(model, True if final_norm is None else bool(final_norm))]
    check_lens_spec(lens)
    out = []
    for spec in _as_list(lens):
        if isinstance(spec, Lens):
            named = NamedLens(_spec_name(spec), spec, lens_provenance(spec))
        elif spec in ("logit", "logit-raw"):
            named = _logit(model, spec == "logit")
        elif spec in ("tuned", "jacobian"):
            fitted = _fitted(model, str(spec), None)
            named = NamedLens(str(spec), fitted, lens_provenance(fitted))
        else:
            from hublens.lenses.artifact import ModelFingerprint, read_config

            config = read_config(spec)
            ModelFingerprint.from_model(model).check(
                config["model"], what=f"The lens in {os.fspath(spec)}"
            )
            fitted = _fitted(model, str(config["kind"]), spec)
            named = NamedLens(str(config["kind"]), fitted, lens_provenance(fitted))
        _check_layers(named, model)
        out.append(named)
    return out
