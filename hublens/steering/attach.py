"""``hublens.steer``: attach a steering vector for the length of a ``with`` block.

:func:`steering_hook_list` builds the ``(hook_name, hook)`` pairs (one :class:`SteerHook` over
the chosen layers) and :func:`steer` attaches them through TransformerLens's own ``hooks``
context, which removes exactly what it attached on any exit, also after an exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

from torch import Tensor

from hublens.hooks.names import Site
from hublens.hooks.positions import Positions, Selector
from hublens.steering.checks import Layers, layer_selection, number
from hublens.steering.hook import steering_hooks
from hublens.steering.vectors import SteeringVector


def _as_vector(vector: SteeringVector | Tensor, layer: Layers | None, site: Site | None) -> tuple:
    if isinstance(vector, SteeringVector):
        return vector.vector, vector.layer if layer is None else layer, site or vector.site
    if not isinstance(vector, Tensor):
        raise TypeError(
            f"vector is a {type(vector).__name__}; pass a SteeringVector or a torch.Tensor."
        )
    if layer is None:
        raise ValueError("layers=None: a bare tensor needs layers=... (or pass a SteeringVector).")
    return vector, layer_selection(layer), site or "resid_post"


def steering_hook_list(
    model: Any,
    vector: SteeringVector | Tensor,
    *,
    scale: float | int = 1.0,
    layers: Layers | None = None,
    where: Selector | None = None,
    mode: Literal["add", "replace"] = "add",
    prompt_len: int | None = None,
    site: Site | None = None,
) -> list[tuple[str, Any]]:
    """The ``(hook_name, hook)`` pairs that :func:`steer` attaches (see there for arguments)."""
    scale = number("scale", scale)
    tensor, chosen, chosen_site = _as_vector(vector, layers, site)
    if where is None and tensor.ndim == 2:
        where = Positions(list(range(tensor.shape[0])))  # ActAdd: the first k positions
    return steering_hooks(
        model,
        tensor,
        layers=chosen,
        scale=scale,
        where=where,
        mode=mode,
        prompt_len=prompt_len,
        site=chosen_site,
    )


@contextlib.contextmanager
def steer(
    model: Any,
    vector: SteeringVector | Tensor,
    *,
    scale: float | int = 1.0,
    layers: Layers | None = None,
    where: Selector | None = None,
    mode: Literal["add", "replace"] = "add",
    prompt_len: int | None = None,
    site: Site | None = None,
) -> Iterator[list[tuple[str, Any]]]:
    """Steer a model inside a ``with`` block; no hook is left behind, also after an exception.

    Everything is validated before any hook is attached (vector width, layers, positions,
    scale). On exit only the hooks this block attached are removed.

    Args:
        model: A HubModel (or TransformerBridge).
        vector: A :class:`SteeringVector` (its layer and site are the defaults) or a tensor
            ``(d_model,)`` / ``(k, d_model)``.
        scale: Strength: ``x + scale * vector`` in ``"add"`` mode.
        layers: Layer(s) to steer; defaults to the vector's own layer.
        where: Positions; default all positions for a ``(d_model,)`` vector and the first k
            positions for a ``(k, d_model)`` ActAdd vector.
        mode: ``"add"`` or ``"replace"``.
        prompt_len: Steer only the prompt's first ``prompt_len`` positions, never the
            KV-cached decode steps.
        site: Residual-stream site; defaults to the vector's own.

    Yields:
        The attached ``(hook_name, hook)`` pairs.

    Raises:
        ValueError / TypeError: Bad vector, scale, layers or positions (before attaching).

    Example:
        >>> v = unembedding_vector(model, "start", "end", layer=9)  # doctest: +SKIP
        >>> with hublens.steer(model, v, scale=8.0, where=LastToken()):  # doctest: +SKIP
        ...     logits = model(tokens)
    """
    hooks = steering_hook_list(
        model,
        vector,
        scale=scale,
        layers=layers,
        where=where,
        mode=mode,
        prompt_len=prompt_len,
        site=site,
    )
    bridge = getattr(model, "bridge", model)
    # TransformerLens's context removes exactly the hooks it attached, on any exit; hooks the
    # caller attached around this block stay.
    with bridge.hooks(fwd_hooks=hooks):
        yield hooks
