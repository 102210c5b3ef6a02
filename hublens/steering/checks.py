"""Argument checks of the steering API, run before any hook is attached or forward is run.

Rules for steering vectors (:func:`check_vector`):

* a real floating-point tensor: complex, bool and integer tensors are refused (cast them
  yourself, e.g. ``vector.float()``, so that nothing is silently truncated or cast);
* finite, and still finite once scaled: ``scale * vector`` must be finite in the model's dtype
  and its squared L2 norm finite in float32, because the next layer's norm squares it (so
  ``|scale * vector|`` must stay below about 1.8e19; a 1e38 vector is refused);
* not requiring grad: steering hooks never backpropagate into the vector, so a vector that
  requires grad is refused rather than silently detached; pass ``vector.detach()``.

Layers may be given as Python or numpy integers (``numpy.int64(3)``); they are converted to
``int`` here before the layer range check.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any, SupportsIndex

import torch
from torch import Tensor

from hublens.hooks.names import validate_layers

#: A layer selection: one layer or several, Python or numpy integers.
Layers = SupportsIndex | Iterable[SupportsIndex]
#: The paper's strength grid: 0 to 3 by 0.5.
DEFAULT_STRENGTHS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
#: Default seeds.
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)


def number(name: str, value: Any) -> float:
    """A finite real number (Python or numpy), as a float.

    Raises:
        TypeError: ``value`` is not a real number (bools and strings included).
        ValueError: It is NaN or infinite.
    """
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}={value!r}: pass a number (int or float).")
    if not math.isfinite(float(value)):
        raise ValueError(f"{name}={value!r}: pass a finite number.")
    return float(value)


def _int_or_self(value: Any) -> Any:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    return value


def layer_selection(layers: Any) -> Any:
    """``layers`` with numpy (or other ``numbers.Integral``) integers converted to ``int``.

    One integer stays one ``int``; an iterable becomes a list; anything else is returned as it
    is, for :func:`hublens.hooks.names.validate_layers` to refuse with its own message.
    """
    if isinstance(layers, numbers.Integral) and not isinstance(layers, bool):
        return int(layers)
    if isinstance(layers, Tensor) and layers.ndim == 0:
        return int(layers) if not layers.is_floating_point() else layers
    if isinstance(layers, Iterable) and not isinstance(layers, (str, bytes)):
        return [_int_or_self(v) for v in layers]
    return layers


def check_layer(model: Any, layer: Any) -> int:
    """Validate ONE layer index against the model (negative values count from the end).

    Raises:
        TypeError: ``layer`` is not an integer.
        ValueError: It is out of range.
    """
    layer = _int_or_self(layer)
    if not isinstance(layer, int):
        raise TypeError(f"layer={layer!r}: pass one int layer in [0, {model.n_layers - 1}].")
    return validate_layers(model, layer)[0]


def model_dtype(model: Any) -> torch.dtype | None:
    """The dtype of the model's weights (None when it cannot be told)."""
    bridge = getattr(model, "bridge", model)
    dtype = getattr(getattr(bridge, "cfg", None), "dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype
    parameters = getattr(bridge, "parameters", None)
    if callable(parameters):
        for p in parameters():
            return p.dtype
    return None


def check_vector(
    name: str, vector: Any, *, scale: float = 1.0, dtype: torch.dtype | None = None
) -> Tensor:
    """Check a steering vector against the rules in this module's docstring.

    Args:
        name: The argument's name, for the error message.
        vector: The tensor to check.
        scale: The multiplier it will be added with.
        dtype: The model's dtype, if known (``scale * vector`` must be finite in it).

    Returns:
        The vector, unchanged.

    Raises:
        TypeError: Not a tensor, or not a real floating-point tensor.
        ValueError: Non-finite, overflowing once scaled, or requiring grad.
    """
    if not isinstance(vector, Tensor):
        raise TypeError(f"{name} is a {type(vector).__name__}; pass a torch.Tensor.")
    if vector.is_complex() or not vector.is_floating_point():
        raise TypeError(
            f"{name} has dtype {vector.dtype}; steering vectors must be real floating point: "
            f"pass {name}.float() (complex parts are never dropped silently)."
        )
    if vector.requires_grad:
        raise ValueError(
            f"{name} requires grad; steering hooks never backpropagate into the vector, so "
            f"pass {name}.detach()."
        )
    if not bool(torch.isfinite(vector).all()):
        raise ValueError(f"{name} contains NaN or infinite values; pass a finite vector.")
    scaled = vector.double() * float(scale)
    squared = scaled.pow(2).sum(-1).float()
    fits = dtype is None or bool(torch.isfinite(scaled.to(dtype)).all())
    if not fits or not bool(torch.isfinite(squared).all()):
        where = f" in {dtype}" if dtype is not None else ""
        raise ValueError(
            f"scale * {name} overflows (max |value| {float(scaled.abs().max()):.3g}{where}; its "
            "squared norm must stay finite in float32, the next norm squares it): use a smaller "
            "vector or scale."
        )
    return vector


def check_strengths(strengths: Iterable[Any]) -> list[float]:
    """Validate a strength grid: finite numbers, at least one, duplicates dropped.

    Raises:
        TypeError: A strength is not a number (strings such as ``"2"`` included).
        ValueError: The grid is empty or holds NaN / infinity.
    """
    if isinstance(strengths, (str, bytes)):
        raise TypeError(f"strengths={strengths!r}: pass a list of numbers, e.g. [0, 0.5, 1].")
    values = list(strengths)
    if not values:
        raise ValueError("strengths=[]: pass at least one strength, e.g. [0, 0.5, 1].")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"strengths contains {value!r} ({type(value).__name__}); strengths are numbers."
            )
        if not math.isfinite(float(value)):
            raise ValueError(f"strengths contains {value!r}; strengths must be finite.")
        out.append(float(value))
    return list(dict.fromkeys(out))


def check_seeds(seeds: Iterable[Any]) -> list[int]:
    """Validate seeds: at least one int.

    Raises:
        TypeError: A seed is not an int.
        ValueError: No seed.
    """
    values = list(seeds)
    if not values:
        raise ValueError("seeds=[]: pass at least one seed, e.g. [0, 1, 2].")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"seeds contains {value!r}; seeds are ints.")
    return list(dict.fromkeys(values))


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """Validate a positive size option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r}: pass an int >= {minimum}.")
    return value
