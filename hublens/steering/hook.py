"""THE steering hook: write vectors (one for all rows, or one per row) at chosen positions.

One class, :class:`SteerHook`, serves every steering path of hublens:

* one ``(d_model,)`` vector at every selected position (``hublens.steer``, ``steering_hooks``);
* an ActAdd ``(k, d_model)`` block, row i at the i-th of k positions;
* per-row ``(batch, k, d_model)`` vectors, one set per batch row (:func:`row_steering_hooks`,
  used by the interventions to run many strengths as rows of one batch);
* a direction scaled to the state norm (``relative=True``, :func:`direction_hook`, used by the
  vision and audio experiments).

The prompt-only guard: with ``prompt_len`` set, the hook acts only in passes that hold the whole
prompt and only on its first ``prompt_len`` positions; KV-cached decode steps (one new position
each) are left untouched, so cached and uncached greedy generation give the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Float, Int, Shaped
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from hublens.hooks.names import Site, hook_name, validate_layers
from hublens.hooks.positions import AllPositions, Positions, Selector
from hublens.steering.checks import Layers, check_vector, layer_selection, model_dtype, number


@dataclass
class SteerHook:
    """Hook that steers the residual stream at chosen positions.

    Attributes:
        vector: ``(d_model,)`` for every selected position; ``(k, d_model)`` with ``Positions``
            of k positions (row i goes to the i-th position), as in ActAdd; or
            ``(batch, k, d_model)`` with ``Positions`` of k positions: one set per batch row.
        scale: Multiplier of the vector in ``"add"`` mode.
        where: Positions to change.
        mode: ``"add"`` (x + scale * vector) or ``"replace"`` (x := vector).
        prompt_len: If set, steer only passes that contain the whole prompt and only its
            first ``prompt_len`` positions. KV-cached decode steps (one new position each) are
            then left untouched, and uncached generation steers the same positions every step,
            so cached and uncached greedy generation agree.
        relative: Use the vector as a unit direction scaled to each state's norm:
            ``"add"`` gives ``x + scale * |x| * unit``, ``"replace"`` gives ``|x| * unit``.
    """

    vector: Shaped[Tensor, "*k d_model"]
    scale: float = 1.0
    where: Selector = field(default_factory=AllPositions)
    mode: Literal["add", "replace"] = "add"
    prompt_len: int | None = None
    relative: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.vector, Tensor) or self.vector.ndim not in (1, 2, 3):
            raise ValueError(
                "vector must be a (d_model,), (k, d_model) or (batch, k, d_model) tensor."
            )
        self.scale = number("scale", self.scale)
        check_vector("vector", self.vector, scale=1.0 if self.relative else self.scale)
        if self.mode not in ("add", "replace"):
            raise ValueError(f"mode={self.mode!r}: choose 'add' or 'replace'.")
        if self.vector.ndim >= 2:
            k = self.vector.shape[-2]
            if not isinstance(self.where, Positions) or self.where.index.shape[-1] != k:
                raise ValueError(
                    f"A (..., k, d_model) vector with k={k} needs where=Positions(...) with k "
                    "positions per row."
                )
        if self.vector.ndim == 3:
            assert isinstance(self.where, Positions)
            index = self.where.index
            if index.ndim == 2 and index.shape[0] != self.vector.shape[0]:
                raise ValueError(
                    f"positions has shape {tuple(index.shape)}; vectors need (batch, k) = "
                    f"{tuple(self.vector.shape[:2])}."
                )
            if int(index.min()) < 0:
                raise ValueError(
                    "positions must be non-negative (count from the start of the prompt)."
                )
        if self.relative and bool((self.vector.norm(dim=-1) == 0).any()):
            raise ValueError("relative=True needs a non-zero direction; the vector is zero.")
        if self.prompt_len is not None:
            if self.prompt_len < 2:
                raise ValueError(
                    f"prompt_len={self.prompt_len}: a prompt of fewer than 2 tokens cannot be told "
                    "apart from a KV-cached decode step; steer with prompt_len=None instead."
                )
            if isinstance(self.where, Positions) and int(self.where.index.max()) >= self.prompt_len:
                raise ValueError(
                    f"positions reach {int(self.where.index.max())}, outside the prompt of "
                    f"{self.prompt_len} tokens."
                )

    def _update(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The vectors laid out like ``x`` and the boolean (batch, pos) mask they cover."""
        vector = self.vector.to(device=x.device, dtype=x.dtype)
        if self.relative:
            vector = vector / vector.norm(dim=-1, keepdim=True)
        if vector.ndim == 1:
            return vector.expand_as(x), self.where.mask(x)
        assert isinstance(self.where, Positions)
        if vector.ndim == 3 and vector.shape[0] != x.shape[0]:
            raise ValueError(f"vectors hold {vector.shape[0]} rows but the batch has {x.shape[0]}.")
        index = self.where.resolved(x)
        rows = torch.arange(x.shape[0], device=x.device)[:, None].expand_as(index)
        mask = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        mask[rows, index] = True
        update = torch.zeros_like(x)
        update[rows, index] = vector if vector.ndim == 3 else vector.expand(x.shape[0], -1, -1)
        return update, mask

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
        update, mask = self._update(x)
        if self.prompt_len is not None:
            mask = mask & (torch.arange(x.shape[1], device=x.device) < self.prompt_len)
        if self.relative:
            norm = x.norm(dim=-1, keepdim=True)
            new = x + self.scale * norm * update if self.mode == "add" else norm * update
        else:
            new = x + self.scale * update if self.mode == "add" else update
        return torch.where(mask[..., None], new, x)


def _d_model(model: Any) -> int:
    return int(getattr(model, "bridge", model).cfg.d_model)


def _hooks(model: Any, hook: SteerHook, layers: Any, site: Site) -> list[tuple[str, SteerHook]]:
    check_vector("vector", hook.vector, scale=hook.scale, dtype=model_dtype(model))
    chosen = validate_layers(model, layer_selection(layers))
    return [(hook_name(layer, site), hook) for layer in chosen]


def steering_hooks(
    model: Any,
    vector: Shaped[Tensor, "*k d_model"],
    *,
    layers: Layers,
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
        layers: Layer(s) to steer (Python or numpy integers).
        scale: Multiplier in ``"add"`` mode.
        where: Positions to change (default: all).
        mode: ``"add"`` or ``"replace"``.
        prompt_len: Steer the prompt only (see :class:`SteerHook`).
        site: Residual-stream site.

    Returns:
        ``(hook_name, hook)`` pairs.

    Raises:
        ValueError / TypeError: Wrong vector width or dtype, non-finite or overflowing vector,
            layers out of range, bad scale or positions.

    Example:
        >>> hooks = steering_hooks(model, vector, layers=8, scale=4.0)  # doctest: +SKIP
    """
    d_model = _d_model(model)
    if not isinstance(vector, Tensor) or vector.ndim > 2 or vector.shape[-1:] != (d_model,):
        shape = tuple(vector.shape) if isinstance(vector, Tensor) else type(vector).__name__
        raise ValueError(
            f"vector has shape {shape}; this model's residual stream needs (d_model,) = "
            f"({d_model},) or (k, {d_model})."
        )
    hook = SteerHook(vector, scale, where or AllPositions(), mode, prompt_len)
    return _hooks(model, hook, layers, site)


def row_steering_hooks(
    model: Any,
    vectors: Shaped[Tensor, "batch k d_model"],
    positions: Int[Tensor, "*batch k"] | Sequence[int],
    *,
    layers: Layers,
    prompt_len: int | None = None,
    site: Site = "resid_post",
) -> list[tuple[str, SteerHook]]:
    """Per-row steering hooks: add ``vectors[b, j]`` at position ``positions[b, j]`` of row b.

    Outcome tables need many (item, strength) pairs; running them as rows of one batch, each
    with its own already-scaled vector, reads the unembedding once per step for all of them.
    A zero row leaves its row exactly unchanged.

    Args:
        model: A HubModel or TransformerBridge.
        vectors: ``(batch, k, d_model)`` already-scaled vectors, one set per row.
        positions: ``(batch, k)`` or ``(k,)`` non-negative positions to add them at.
        layers: Layer(s) to steer.
        prompt_len: Steer the prompt pass only (positions must lie inside the prompt).
        site: Residual-stream site.

    Returns:
        ``(hook_name, hook)`` pairs.

    Raises:
        ValueError: Wrong width, layers out of range, bad positions.

    Example:
        >>> vecs = torch.zeros(4, 1, model.d_model)  # doctest: +SKIP
        >>> hooks = row_steering_hooks(model, vecs, [6], layers=8, prompt_len=7)  # doctest: +SKIP
    """
    d_model = _d_model(model)
    if not isinstance(vectors, Tensor) or vectors.ndim != 3 or vectors.shape[-1] != d_model:
        shape = tuple(vectors.shape) if isinstance(vectors, Tensor) else type(vectors).__name__
        raise ValueError(f"vectors has shape {shape}; this model needs (batch, k, {d_model}).")
    hook = SteerHook(vectors, 1.0, Positions(torch.as_tensor(positions)), "add", prompt_len)
    return _hooks(model, hook, layers, site)


def direction_hook(
    direction: Shaped[Tensor, "*batch d_model"],
    positions: Sequence[int],
    mode: Literal["add", "replace"] = "replace",
    *,
    alpha: float = 1.0,
    relative: bool = True,
    prompt_len: int | None = None,
) -> SteerHook:
    """A :class:`SteerHook` that writes a direction at given positions (same for every row).

    Args:
        direction: ``(d_model,)``, or ``(batch, d_model)`` for one per row.
        positions: The positions to change.
        mode: ``"replace"``: ``x := |x| * u``; ``"add"``: ``x := x + alpha * |x| * u``.
        alpha: Strength in ``"add"`` mode.
        relative: Scale by the state norm (``u`` is the unit direction); False adds
            ``alpha * direction`` as given (the paper's ``s * (W_U[new] - W_U[old])``), in
            either mode.
        prompt_len: Act only in passes holding the whole prompt (not on cached decode steps).

    Returns:
        The hook.
    """
    where = Positions(list(positions))
    if isinstance(direction, Tensor) and direction.ndim == 2:  # one direction per row
        direction = direction[:, None, :].expand(-1, where.index.shape[-1], -1)
    return SteerHook(direction, alpha, where, mode if relative else "add", prompt_len, relative)


#: The name the vision/audio experiments used; it builds the one :class:`SteerHook`.
DirectionHook = direction_hook
