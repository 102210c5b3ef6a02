"""Steering hooks: add ``scale * vector`` to (or write ``vector`` over) chosen positions."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from hublens.hooks.names import Site, hook_name, validate_layers
from hublens.hooks.positions import AllPositions, Positions, Selector


@dataclass
class SteerHook:
    """Hook that steers the residual stream.

    Attributes:
        vector: ``(d_model,)`` for every selected position, or ``(k, d_model)`` with
            ``Positions`` of k positions (row i goes to the i-th position), as in ActAdd.
        scale: Multiplier of the vector in ``"add"`` mode.
        where: Positions to change.
        mode: ``"add"`` (x + scale * vector) or ``"replace"`` (x := vector).
        prompt_len: If set, steer only passes that contain the whole prompt and only its
            first ``prompt_len`` positions. KV-cached decode steps (one new position each) are
            then left untouched, and uncached generation steers the same positions every step,
            so cached and uncached greedy generation agree.
    """

    vector: Float[Tensor, "*k d_model"]
    scale: float = 1.0
    where: Selector = field(default_factory=AllPositions)
    mode: Literal["add", "replace"] = "add"
    prompt_len: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.vector, Tensor) or self.vector.ndim not in (1, 2):
            raise ValueError("vector must be a (d_model,) or (k, d_model) tensor.")
        if not bool(torch.isfinite(self.vector).all()):
            raise ValueError("vector contains NaN or infinite values.")
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)):
            raise TypeError(f"scale={self.scale!r}: pass a number.")
        if not math.isfinite(self.scale):
            raise ValueError(f"scale={self.scale!r}: pass a finite number.")
        if self.mode not in ("add", "replace"):
            raise ValueError(f"mode={self.mode!r}: choose 'add' or 'replace'.")
        if self.vector.ndim == 2:
            if not isinstance(self.where, Positions) or self.where.index.shape[-1] != len(
                self.vector
            ):
                raise ValueError(
                    f"A (k, d_model) vector with k={len(self.vector)} needs "
                    f"where=Positions(...) with k positions per row."
                )
        if self.prompt_len is not None:
            if self.prompt_len < 2:
                raise ValueError(
                    f"prompt_len={self.prompt_len}: a prompt of fewer than 2 tokens cannot be told "
                    "apart from a KV-cached decode step; steer with prompt_len=None instead."
                )

    def __call__(
        self, x: Float[Tensor, "batch pos d_model"], hook: HookPoint
    ) -> Float[Tensor, "batch pos d_model"]:
        """Return the steered activation."""
        if x.shape[-1] != self.vector.shape[-1]:
            raise ValueError(
                f"vector has width {self.vector.shape[-1]} but {hook.name} has d_model="
                f"{x.shape[-1]}; build the vector from this model's residual stream."
            )
        if self.prompt_len is not None and x.shape[1] < self.prompt_len:
            return x  # a KV-cached decode step: the prompt is not in this pass
        vector = self.vector.to(device=x.device, dtype=x.dtype)
        if self.vector.ndim == 2:
            assert isinstance(self.where, Positions)
            index = self.where.resolved(x)
            rows = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(index)
            mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
            mask[rows, index] = True
            update = torch.zeros_like(x)
            update[rows, index] = vector.expand(x.shape[0], -1, -1)
        else:
            mask = self.where.mask(x)
            update = vector.expand_as(x)
        if self.prompt_len is not None:
            mask = mask & (torch.arange(x.shape[1], device=x.device) < self.prompt_len)
        new = x + self.scale * update if self.mode == "add" else update
        return torch.where(mask[..., None], new, x)


def steering_hooks(
    model: Any,
    vector: Float[Tensor, "*k d_model"],
    *,
    layers: int | Iterable[int],
    scale: float = 1.0,
    where: Selector | None = None,
    mode: Literal["add", "replace"] = "add",
    prompt_len: int | None = None,
    site: Site = "resid_post",
) -> list[tuple[str, SteerHook]]:
    """Steering hooks over one or more layers, validated against the model before any forward.

    Args:
        model: A HubModel or TransformerBridge.
        vector: The steering vector (see :class:`SteerHook`).
        layers: Layer(s) to steer.
        scale: Multiplier in ``"add"`` mode.
        where: Positions to change (default: all).
        mode: ``"add"`` or ``"replace"``.
        prompt_len: Steer the prompt only (see :class:`SteerHook`).
        site: Residual-stream site.

    Returns:
        ``(hook_name, hook)`` pairs.

    Raises:
        ValueError: Wrong vector width, layers out of range, bad scale or positions.
    """
    d_model = int(getattr(model, "bridge", model).cfg.d_model)
    if not isinstance(vector, Tensor) or vector.shape[-1:] != (d_model,):
        shape = tuple(vector.shape) if isinstance(vector, Tensor) else type(vector).__name__
        raise ValueError(
            f"vector has shape {shape}; this model's residual stream needs (d_model,) = "
            f"({d_model},) or (k, {d_model})."
        )
    hook = SteerHook(vector, scale, where or AllPositions(), mode, prompt_len)
    return [(hook_name(layer, site), hook) for layer in validate_layers(model, layers)]
