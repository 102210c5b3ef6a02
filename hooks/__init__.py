"""Typed TransformerLens hook functions: capture, lenses, steering.

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
from hublens.hooks.lens import Lens, LensReadout, LogitLens
from hublens.hooks.lens_hooks import LensHook, lens_hooks
from hublens.hooks.names import Site, attached_hooks, hook_name, validate_layers
from hublens.hooks.positions import AllPositions, LastToken, MaskedMean, Positions, Selector
from hublens.hooks.readout import Unembed
from hublens.hooks.steer import SteerHook, steering_hooks
from hublens.hooks.stop import forward_until

__all__ = [
    "ActivationStore",
    "AllPositions",
    "CaptureHook",
    "LastToken",
    "Lens",
    "LensHook",
    "LensReadout",
    "LogitLens",
    "MaskedMean",
    "Positions",
    "Selector",
    "Site",
    "SteerHook",
    "Unembed",
    "attached_hooks",
    "capture_hooks",
    "forward_until",
    "hook_name",
    "lens_hooks",
    "steering_hooks",
    "validate_layers",
]
