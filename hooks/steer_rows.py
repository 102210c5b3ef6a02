"""Per-row steering: a different vector (and strength) for every row of a batch.

:class:`~hublens.hooks.steer.SteerHook` adds ONE vector to every row. Outcome tables need many
(item, strength) pairs; running them as rows of one batch, each with its own already-scaled
vector, reads the unembedding once per step for all of them. Rows are independent (no padding
is involved: a batch holds copies of equal-length prompts), so a row steered here gives the
same tokens as the same prompt steered alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from hublens.hooks.names import Site, hook_name, validate_layers


@dataclass
class RowSteerHook:
    """Add ``vectors[b, j]`` at position ``positions[b, j]`` of row ``b``.

    Attributes:
        vectors: ``(batch, k, d_model)`` already-scaled vectors (a zero row leaves its row
            exactly unchanged).
        positions: ``(batch, k)`` non-negative positions, or ``(k,)`` shared by all rows.
        prompt_len: If set, steer only passes that hold the whole prompt (positions must lie
            inside it); KV-cached decode steps are left untouched, and uncached generation steers
            the same positions at every step, so both give the same greedy tokens.
    """

    vectors: Float[Tensor, "batch k d_model"]
    positions: Int[Tensor, "*batch k"]
    prompt_len: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.vectors, Tensor) or self.vectors.ndim != 3:
            raise ValueError("vectors must be a (batch, k, d_model) tensor.")
        if not bool(torch.isfinite(self.vectors).all()):
            raise ValueError("vectors contain NaN or infinite values.")
        positions = torch.as_tensor(self.positions, dtype=torch.long)
        if positions.ndim == 1:
            positions = positions.expand(self.vectors.shape[0], -1)
        if positions.shape != self.vectors.shape[:2]:
            raise ValueError(
                f"positions has shape {tuple(positions.shape)}; vectors need (batch, k) = "
                f"{tuple(self.vectors.shape[:2])}."
            )
        if int(positions.min()) < 0:
            raise ValueError("positions must be non-negative (count from the start of the prompt).")
        if self.prompt_len is not None:
            if self.prompt_len < 2:
                raise ValueError(
                    f"prompt_len={self.prompt_len}: a prompt of fewer than 2 tokens cannot be told "
                    "apart from a KV-cached decode step."
                )
            if int(positions.max()) >= self.prompt_len:
                raise ValueError(
                    f"positions reach {int(positions.max())}, outside the prompt of "
                    f"{self.prompt_len} tokens."
                )
        self.positions = positions

    def __call__(
        self, x: Float[Tensor, "batch pos d_model"], hook: HookPoint
    ) -> Float[Tensor, "batch pos d_model"]:
        """Return the steered activation."""
        if x.shape[-1] != self.vectors.shape[-1]:
            raise ValueError(
                f"vectors have width {self.vectors.shape[-1]} but {hook.name} has d_model="
                f"{x.shape[-1]}; build them from this model's residual stream."
            )
        if x.shape[0] != self.vectors.shape[0]:
            raise ValueError(
                f"vectors hold {self.vectors.shape[0]} rows but the batch has {x.shape[0]}."
            )
        if self.prompt_len is not None and x.shape[1] < self.prompt_len:
            return x  # a KV-cached decode step
        if int(self.positions.max()) >= x.shape[1]:
            raise ValueError(
                f"positions reach {int(self.positions.max())} but the sequence has {x.shape[1]}."
            )
        index = self.positions.to(x.device)
        out = x.clone()
        rows = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(index)
        out[rows, index] = x[rows, index] + self.vectors.to(device=x.device, dtype=x.dtype)
        return out


def row_steering_hooks(
    model: Any,
    vectors: Float[Tensor, "batch k d_model"],
    positions: Int[Tensor, "*batch k"] | Sequence[int],
    *,
    layers: int | Iterable[int],
    prompt_len: int | None = None,
    site: Site = "resid_post",
) -> list[tuple[str, RowSteerHook]]:
    """Per-row steering hooks over one or more layers, validated before any forward.

    Args:
        model: A HubModel or TransformerBridge.
        vectors: ``(batch, k, d_model)`` already-scaled vectors, one set per row.
        positions: ``(batch, k)`` or ``(k,)`` positions to add them at.
        layers: Layer(s) to steer.
        prompt_len: Steer the prompt pass only (see :class:`RowSteerHook`).
        site: Residual-stream site.

    Returns:
        ``(hook_name, hook)`` pairs.

    Raises:
        ValueError: Wrong width, layers out of range, bad positions.

    Example:
        >>> vecs = torch.zeros(4, 1, model.d_model)  # doctest: +SKIP
        >>> hooks = row_steering_hooks(model, vecs, [6], layers=8, prompt_len=7)  # doctest: +SKIP
    """
    d_model = int(getattr(model, "bridge", model).cfg.d_model)
    if not isinstance(vectors, Tensor) or vectors.ndim != 3 or vectors.shape[-1] != d_model:
        shape = tuple(vectors.shape) if isinstance(vectors, Tensor) else type(vectors).__name__
        raise ValueError(f"vectors has shape {shape}; this model needs (batch, k, {d_model}).")
    hook = RowSteerHook(vectors, torch.as_tensor(positions), prompt_len)
    return [(hook_name(layer, site), hook) for layer in validate_layers(model, layers)]
