"""Hook-point names, layer validation, and a check that no hook is left attached."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal, SupportsIndex

from transformer_lens.hook_points import HookPoint

#: Residual-stream sites by TransformerLens hook name. ``resid_post`` of block i is what the
#: paper calls the hidden state of layer i.
Site = Literal["resid_pre", "resid_mid", "resid_post"]
_SITES = ("resid_pre", "resid_mid", "resid_post")


def _bridge(model: Any) -> Any:
    return getattr(model, "bridge", model)


def n_layers_of(model: Any) -> int:
    """Number of blocks of a HubModel or a TransformerBridge."""
    return int(_bridge(model).cfg.n_layers)


def validate_layers(
    model: Any, layers: SupportsIndex | Iterable[SupportsIndex] | None
) -> list[int]:
    """Normalise a layer selection, checking it against the model.

    Args:
        model: A HubModel or TransformerBridge.
        layers: One layer, several, or None for all. Negative values count from the end.

    Returns:
        Sorted, de-duplicated, non-negative layer indices.

    Raises:
        TypeError: A layer is not an integer (bools and floats are refused; numpy and torch
            integer scalars are accepted).
        ValueError: A layer is out of range, or the selection is empty.
    """
    n = n_layers_of(model)
    if layers is None:
        return list(range(n))
    if isinstance(layers, (str, bytes)):
        raise TypeError(f"layers={layers!r}; layers are ints in [0, {n - 1}] (or a list).")
    if hasattr(layers, "tolist"):  # numpy / torch scalars and arrays
        layers = layers.tolist()
    items = [layers] if not isinstance(layers, Iterable) else list(layers)
    if not items:
        raise ValueError(
            f"layers=[]: select at least one layer in [0, {n - 1}] or pass None for all."
        )
    out = set()
    for item in items:
        layer = _layer_index(item, n)
        if not -n <= layer < n:
            raise ValueError(
                f"layers contains {layer}, out of range: this model has {n} layers, so valid "
                f"layers are 0..{n - 1} (or -{n}..-1 from the end)."
            )
        out.add(layer % n)
    return sorted(out)


def _layer_index(value: Any, n: int) -> int:
    """An int layer index from an int or an integer scalar (numpy, torch); no bools or floats."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple)):
        value = value.tolist()  # numpy / torch integer scalars become Python ints
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"layers contains {value!r} ({type(value).__name__}); layers are ints in "
            f"[0, {n - 1}], e.g. layers=[0, {n - 1}]."
        )
    return value


def hook_name(layer: int, site: Site = "resid_post") -> str:
    """TransformerLens hook name of a residual-stream site, e.g. ``blocks.3.hook_resid_post``."""
    if site not in _SITES:
        raise ValueError(f"site={site!r}: choose one of {', '.join(_SITES)}.")
    return f"blocks.{layer}.hook_{site}"


def attached_hooks(model: Any) -> list[str]:
    """Names of hook points that currently have forward or backward hooks attached.

    Use it to check that nothing leaked after a scan or a steered generation.

    Args:
        model: A HubModel or TransformerBridge.

    Returns:
        Hook-point names (empty when the model is clean).
    """
    names, seen = [], set()
    for name, point in _bridge(model).hook_dict.items():
        if not isinstance(point, HookPoint) or id(point) in seen:
            continue
        seen.add(id(point))
        if point.has_hooks():
            names.append(point.name or name)
    return names
