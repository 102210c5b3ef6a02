"""Capture hooks: copy selected residual-stream rows into a store the caller owns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, SupportsIndex

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from hublens.hooks.names import Site, hook_name, validate_layers
from hublens.hooks.positions import LastToken, Selector


class ActivationStore(dict[str, list[Tensor]]):
    """Captured tensors by hook name; each forward pass appends one tensor per hook.

    Example:
        >>> store = ActivationStore()
        >>> store.add("blocks.0.hook_resid_post", torch.zeros(2, 4))
        >>> store.tensor("blocks.0.hook_resid_post").shape
        torch.Size([2, 4])
    """

    def add(self, name: str, value: Tensor) -> None:
        """Append one captured tensor under ``name``."""
        self.setdefault(name, []).append(value)

    def tensor(self, name: str) -> Tensor:
        """Everything captured under ``name``, concatenated along the batch dimension."""
        if name not in self:
            raise KeyError(f"Nothing was captured under {name!r}; captured: {sorted(self)}.")
        values = self[name]
        return values[0] if len(values) == 1 else torch.cat(values, dim=0)

    def stack(self, names: Iterable[str]) -> Tensor:
        """Captures of several hooks stacked on a new leading ``layer`` dimension."""
        return torch.stack([self.tensor(name) for name in names], dim=0)


@dataclass
class CaptureHook:
    """Hook that stores the selected rows of its activation.

    Attributes:
        store: Where captures go (owned by the caller).
        where: Which positions to keep.
        to_cpu: Move the copy to the CPU.
        dtype: Cast the copy to this dtype (e.g. torch.float16 to halve memory).
        detach: Detach the copy from the autograd graph.
        check_finite: Raise if a captured value is NaN or infinite.
        key: Store key; None uses the hook point's canonical name (TransformerLens 4 resolves
            aliases, so ``blocks.3.hook_resid_post`` fires as ``blocks.3.hook_out``).
    """

    store: ActivationStore
    where: Selector = field(default_factory=LastToken)
    to_cpu: bool = False
    dtype: torch.dtype | None = None
    detach: bool = True
    check_finite: bool = True
    key: str | None = None

    def __call__(self, x: Float[Tensor, "batch pos d_model"], hook: HookPoint) -> None:
        """Select, copy and store; returns None so the forward pass is unchanged."""
        value = self.where.gather(x)
        if self.detach:
            value = value.detach()
        if self.check_finite and not bool(torch.isfinite(value).all()):
            raise FloatingPointError(
                f"Non-finite values (NaN/inf) in the activation at {hook.name}; check the model's "
                "dtype (fp16 overflows) and inputs."
            )
        if self.to_cpu or self.dtype is not None:
            value = value.to(device="cpu" if self.to_cpu else value.device, dtype=self.dtype)
        elif not self.detach or value.data_ptr() == x.data_ptr():
            value = value.clone()
        self.store.add(self.key or str(hook.name), value)


def capture_hooks(
    model: Any,
    store: ActivationStore,
    *,
    layers: SupportsIndex | Iterable[SupportsIndex] | None = None,
    site: Site = "resid_post",
    where: Selector | None = None,
    to_cpu: bool = False,
    dtype: torch.dtype | None = None,
) -> list[tuple[str, CaptureHook]]:
    """Capture hooks over several layers, for ``model.hooks(fwd_hooks=...)``.

    Args:
        model: A HubModel or TransformerBridge.
        store: Where captures go.
        layers: Layers to capture (None: all).
        site: Residual-stream site.
        where: Positions to keep (default: the last token of each row).
        to_cpu: Move captures to the CPU.
        dtype: Cast captures to this dtype.

    Returns:
        ``(hook_name, hook)`` pairs; captures are stored under those names.

    Example:
        >>> store = ActivationStore()
        >>> with model.hooks(fwd_hooks=capture_hooks(model, store)):  # doctest: +SKIP
        ...     model(tokens)
    """
    where = where or LastToken()
    hooks = []
    for layer in validate_layers(model, layers):
        name = hook_name(layer, site)
        hooks.append((name, CaptureHook(store, where, to_cpu=to_cpu, dtype=dtype, key=name)))
    return hooks
