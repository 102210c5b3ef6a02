"""Typed TransformerLens hook functions: capture, logit lens, steering.

Every hook has the TransformerLens signature ``hook(x, hook: HookPoint) -> Tensor | None`` with
jaxtyping shapes, and works with ``model.hooks(...)``, ``run_with_hooks`` and ``generate``. The
``*_hooks`` helpers build ``(hook_name, hook)`` lists over several layers, validated against the
model before any forward pass.

Example:
    >>> from hublens.hooks import ActivationStore, capture_hooks
    >>> store = ActivationStore()
    >>> with model.hooks(fwd_hooks=capture_hooks(model, store, layers=[3, 6])):  # doctest: +SKIP
    ...     model(tokens)
"""

from hublens.hooks.capture import ActivationStore, CaptureHook, capture_hooks
from hublens.hooks.lens import LensHook, LensReadout, LogitLens, lens_hooks
from hublens.hooks.names import Site, attached_hooks, hook_name, validate_layers
from hublens.hooks.positions import AllPositions, LastToken, MaskedMean, Positions, Selector
from hublens.hooks.steer import SteerHook, steering_hooks

__all__ = [
    "ActivationStore",
    "AllPositions",
    "CaptureHook",
    "LastToken",
    "LensHook",
    "LensReadout",
    "LogitLens",
    "MaskedMean",
    "Positions",
    "Selector",
    "Site",
    "SteerHook",
    "attached_hooks",
    "capture_hooks",
    "hook_name",
    "lens_hooks",
    "steering_hooks",
    "validate_layers",
]
