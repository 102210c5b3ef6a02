"""Which sequence positions a hook reads or writes.

A selector answers two questions about an activation ``x`` of shape ``(batch, pos, d_model)``:
``gather(x)`` returns the selected rows (for capture and lens hooks) and ``mask(x)`` returns a
boolean ``(batch, pos)`` map of the selected positions (for steering hooks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor


def _check_lengths(lengths: Tensor, batch: int, pos: int) -> None:
    if lengths.shape != (batch,):
        raise ValueError(
            f"LastToken(lengths=...) has shape {tuple(lengths.shape)} but the batch has {batch} "
            "rows; pass one length per row (TokenBatch.lengths)."
        )
    if int(lengths.min()) < 1 or int(lengths.max()) > pos:
        raise ValueError(
            f"LastToken(lengths=...) must lie in [1, {pos}] for a sequence of {pos} positions; "
            f"got min {int(lengths.min())}, max {int(lengths.max())}."
        )


@dataclass(frozen=True)
class AllPositions:
    """Every position of every row."""

    def gather(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch pos d_model"]:
        """All rows, unchanged."""
        return x

    def mask(self, x: Float[Tensor, "batch pos d_model"]) -> Bool[Tensor, "batch pos"]:
        """True everywhere."""
        return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)


@dataclass(frozen=True)
class LastToken:
    """The last real token of each row.

    Attributes:
        lengths: Real length of each row of a right-padded batch (``TokenBatch.lengths``);
            None means every row's last position is its last token.
    """

    lengths: Int[Tensor, " batch"] | None = None

    def index(self, x: Float[Tensor, "batch pos d_model"]) -> Int[Tensor, " batch"]:
        """Position of the last real token per row."""
        batch, pos = x.shape[:2]
        if self.lengths is None:
            return torch.full((batch,), pos - 1, dtype=torch.long, device=x.device)
        _check_lengths(self.lengths, batch, pos)
        return self.lengths.to(x.device, torch.long) - 1

    def gather(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch d_model"]:
        """The last-token rows."""
        rows = torch.arange(x.shape[0], device=x.device)
        return x[rows, self.index(x)]

    def mask(self, x: Float[Tensor, "batch pos d_model"]) -> Bool[Tensor, "batch pos"]:
        """True at each row's last token."""
        out = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        out[torch.arange(x.shape[0], device=x.device), self.index(x)] = True
        return out


@dataclass(frozen=True, init=False)
class Positions:
    """Given positions: the same list for every row, or one row of positions per batch row.

    Attributes:
        index: ``(k,)`` positions shared by all rows, or ``(batch, k)``. Negative values count
            from the end, as in Python.
    """

    index: Int[Tensor, "*batch k"]

    def __init__(self, index: Sequence[int] | Tensor) -> None:
        tensor = torch.as_tensor(index, dtype=torch.long)
        if tensor.numel() == 0:
            raise ValueError(
                "Positions(index=[]): the position set is empty; pass at least one position, "
                "or use AllPositions() / LastToken()."
            )
        if tensor.ndim not in (1, 2):
            raise ValueError(
                f"Positions(index=...) must be (k,) or (batch, k); got shape {tuple(tensor.shape)}."
            )
        object.__setattr__(self, "index", tensor)

    def resolved(self, x: Float[Tensor, "batch pos d_model"]) -> Int[Tensor, "batch k"]:
        """Non-negative positions, one row per batch row, range-checked."""
        batch, pos = x.shape[:2]
        index = self.index.to(x.device)
        if index.ndim == 1:
            index = index.expand(batch, -1)
        elif index.shape[0] != batch:
            raise ValueError(
                f"Positions(index=...) has {index.shape[0]} rows but the batch has {batch}."
            )
        if int(index.min()) < -pos or int(index.max()) >= pos:
            raise ValueError(
                f"Positions(index=...) out of range for a sequence of {pos} positions: "
                f"min {int(index.min())}, max {int(index.max())}."
            )
        return index % pos

    def gather(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch k d_model"]:
        """The rows at the given positions."""
        index = self.resolved(x)
        return x.gather(1, index[..., None].expand(-1, -1, x.shape[-1]))

    def mask(self, x: Float[Tensor, "batch pos d_model"]) -> Bool[Tensor, "batch pos"]:
        """True at the given positions."""
        out = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
        out.scatter_(1, self.resolved(x), True)
        return out


@dataclass(frozen=True)
class MaskedMean:
    """Mean over the positions a mask marks (e.g. the attention mask, or a word's tokens).

    Attributes:
        weights: ``(batch, pos)``, 1 where a position counts, 0 elsewhere.
    """

    weights: Int[Tensor, "batch pos"] | Bool[Tensor, "batch pos"] | Float[Tensor, "batch pos"]

    def gather(self, x: Float[Tensor, "batch pos d_model"]) -> Float[Tensor, "batch d_model"]:
        """Mean of the marked rows, per batch row."""
        if self.weights.shape != x.shape[:2]:
            raise ValueError(
                f"MaskedMean(weights=...) has shape {tuple(self.weights.shape)}, the activation "
                f"has (batch, pos) = {tuple(x.shape[:2])}."
            )
        weights = self.weights.to(x.device, x.dtype)
        counts = weights.sum(1, keepdim=True)
        if bool((counts == 0).any()):
            raise ValueError("MaskedMean(weights=...) marks no position in some row.")
        return (x * weights[..., None]).sum(1) / counts

    def mask(self, x: Float[Tensor, "batch pos d_model"]) -> Bool[Tensor, "batch pos"]:
        """True where the weights are non-zero."""
        return self.weights.to(x.device) != 0


Selector = AllPositions | LastToken | Positions | MaskedMean
