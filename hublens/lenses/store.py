"""Where fitted lenses live: shipped with the package for the bundled models, else the cache.

Lookup order for ``find_lens(model, kind)``:

1. ``hublens/lenses/bundled/<bundled model name>/<kind>/`` — only when the model was loaded
   as a bundled model (``model.provenance.source == "bundled"``);
2. ``cache_root()/lenses/<model name sanitised>-<d_model>x<n_layers>/<kind>/`` — where
   ``hublens fit-lens`` writes by default.

A folder counts only if it holds ``lens.json``; its contents are checked when loaded.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from hublens.cache import cache_root
from hublens.lenses.artifact import CONFIG, KINDS

#: Folder of the lenses shipped with the package.
BUNDLED_LENSES = Path(__file__).resolve().parent / "bundled"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: choose one of {', '.join(KINDS)}.")


def _name(model: Any) -> str:
    return str(getattr(getattr(model, "provenance", None), "name", "object"))


def model_key(model: Any) -> str:
    """``<model name sanitised>-<d_model>x<n_layers>``, the cache folder of a model's lenses."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", _name(model)).strip("_") or "model"
    return f"{safe}-{int(model.d_model)}x{int(model.n_layers)}"


def bundled_folder(model: Any, kind: str) -> Path | None:
    """The shipped lens folder of a bundled model (None for other models)."""
    _check_kind(kind)
    provenance = getattr(model, "provenance", None)
    if getattr(provenance, "source", None) != "bundled":
        return None
    return BUNDLED_LENSES / _name(model) / kind


def cache_folder(model: Any, kind: str) -> Path:
    """Where a fitted lens of this model and kind is written in the cache."""
    _check_kind(kind)
    return cache_root() / "lenses" / model_key(model) / kind


def default_out(model: Any, kind: str) -> Path:
    """The ``--out`` folder :func:`missing_lens_message` suggests (the cache folder)."""
    return cache_folder(model, kind)


def find_lens(model: Any, kind: str) -> Path | None:
    """The folder of this model's lens of ``kind``: shipped first, then the cache; or None."""
    for folder in (bundled_folder(model, kind), cache_folder(model, kind)):
        if folder is not None and (folder / CONFIG).is_file():
            return folder
    return None


def missing_lens_message(model: Any, kind: str) -> str:
    """What to run when no lens of ``kind`` exists for this model."""
    name = _name(model)
    return (
        f"No {kind} lens for model {name!r} (d_model={model.d_model}, n_layers={model.n_layers}) "
        f"was found in the package or in {cache_folder(model, kind).parent}. Fit one with: "
        f"hublens fit-lens --model {name} --kind {kind} --out {cache_folder(model, kind)}"
    )
