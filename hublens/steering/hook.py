"""THE steering hook: write vectors (one for all rows, or one per row) at chosen positions.

One class, :class:`SteerHook`, serves every steering path of hublens:

* one ``(d_model,)`` vector at every selected position (``hublens.steer``, ``steering_hooks``);
* an ActAdd ``(k, d_model)`` block, row i at the i-th of k positions;
* per-row ``(batch, k, d_model)`` vectors, one set per batch row (:func:`row_steering_hooks`,
  used by the interventions to run many strengths as rows of one batch);
* a direction scaled to the state norm (``relative=True``, :func:`direction_hook`, used by the
  vision and audio experiments);
* activation patching (:func:`patch_hooks`, used by :mod:`hublens.patching`): one stored state
  per row and layer written over the row's state in ``"replace"`` mode.

The prompt-only guard: with ``prompt_len`` set, the hook acts only in passes that hold the whole
prompt and only on its first ``prompt_len`` positions; KV-cached decode steps (one new position
each) are left untouched, so cached and uncached greedy generation give the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from jaxtyping import Bool, Float, Int, Shaped
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from hublens.hooks.names import Site, hook_name, n_layers_of, validate_layers
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
        rows: ``(batch,)`` booleans: only these batch rows are changed (None: every row). Lets
            one batch carry rows patched at different layers (activation patching).
    """

    vector: Shaped[Tensor, "*k d_model"]
    scale: float = 1.0
    where: Selector = field(default_factory=AllPositions)
    mode: Literal["add", "replace"] = "add"
    prompt_len: int | None = None
    relative: bool = False
    rows: Bool[Tensor, " batch"] | None = None

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
        if self.rows is not None and (
            not isinstance(self.rows, Tensor)
            or self.rows.dtype != torch.bool
            or self.rows.ndim != 1
        ):
            raise ValueError("rows must be a (batch,) bool tensor, or None for every row.")
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
        if self.rows is not None:
            if self.rows.shape[0] != x.shape[0]:
                raise ValueError(f"rows has {self.rows.shape[0]} entries; the batch {x.shape[0]}.")
            mask = mask & self.rows.to(x.device)[:, None]
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


def patch_hooks(
    model: Any,
    states: Float[Tensor, "layer batch d_model"],
    positions: Int[Tensor, " batch"] | Sequence[int],
    *,
    layers: Layers,
    prompt_len: int | None = None,
    site: Site = "resid_post",
    rows: Bool[Tensor, "layer batch"] | None = None,
) -> list[tuple[str, SteerHook]]:
    """Activation patching: write ``states[j, b]`` over row b's state at ``positions[b]``.

    One replace-mode :class:`SteerHook` per layer (layer ``layers[j]`` gets ``states[j]``), so
    patching is the same hook as steering, only with ``mode="replace"`` and one stored state per
    row. Patching a row's own state back into it changes nothing, exactly.

    Args:
        model: A HubModel or TransformerBridge.
        states: ``(layer, batch, d_model)`` states to write, one per patched layer and row
            (e.g. the source prompts' last-token ``resid_post``).
        positions: ``(batch,)`` non-negative position to overwrite in each row.
        layers: The patched layers, in the order of ``states``'s first dimension.
        prompt_len: Patch the prompt pass only (KV-cached decode steps are left alone).
        site: Residual-stream site.
        rows: ``(layer, batch)`` booleans: which rows each layer patches (None: all), so one
            batch can hold rows patched at different layers; other rows stay exactly as they are.

    Returns:
        ``(hook_name, hook)`` pairs, one per layer.

    Raises:
        ValueError: Wrong shapes, width, a layer out of range or repeated, bad positions.

    Example:
        >>> hooks = patch_hooks(model, source_states[[6]], [12], layers=[6])  # doctest: +SKIP
    """
    selection = layer_selection(layers)
    chosen = [selection] if not isinstance(selection, list) else selection
    checked = validate_layers(model, chosen)
    if len(checked) != len(chosen):
        raise ValueError(f"layers={chosen}: each patched layer must appear once.")
    n = n_layers_of(model)
    chosen = [int(layer) % n for layer in chosen]  # validated: in range, negative from the end
    d_model = _d_model(model)
    if not isinstance(states, Tensor) or states.ndim != 3 or states.shape[-1] != d_model:
        shape = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
        raise ValueError(
            f"states has shape {shape}; patching needs (layer, batch, d_model) = "
            f"({len(chosen)}, batch, {d_model})."
        )
    if states.shape[0] != len(chosen):
        raise ValueError(
            f"states holds {states.shape[0]} layers but layers={chosen} names {len(chosen)}."
        )
    index = torch.as_tensor(positions, dtype=torch.long).reshape(-1, 1)
    if index.shape[0] != states.shape[1]:
        raise ValueError(
            f"positions has {index.shape[0]} entries but states has {states.shape[1]} rows."
        )
    if rows is not None and tuple(rows.shape) != tuple(states.shape[:2]):
        raise ValueError(
            f"rows has shape {tuple(rows.shape)}; states need {tuple(states.shape[:2])}."
        )
    hooks = []
    for j, layer in enumerate(chosen):
        hook = SteerHook(
            states[j][:, None, :],
            1.0,
            Positions(index),
            "replace",
            prompt_len,
            rows=None if rows is None else rows[j],
        )
        check_vector("states", hook.vector, scale=1.0, dtype=model_dtype(model))
        hooks.append((hook_name(layer, site), hook))
    return hooks
