"""Lens hooks: read selected rows through a lens during a forward pass, into a store."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, SupportsIndex

from jaxtyping import Float
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from hublens.hooks.lens import Lens, LensReadout, LogitLens
from hublens.hooks.names import Site, hook_name, validate_layers
from hublens.hooks.positions import LastToken, Selector


@dataclass
class LensHook:
    """Hook that reads its selected rows through a lens into a store.

    Attributes:
        lens: The lens.
        store: ``hook name -> list of readouts`` (one per forward pass), owned by the caller.
        where: Positions to read.
        token_ids: Target ids (see :meth:`Lens.readout`).
        top_k: Top-k per row.
        key: Store key; None uses the hook point's canonical name.
        layer: The block whose ``resid_post`` this hook reads (see :meth:`Lens.readout`), or
            None for other sites.
    """

    lens: Lens
    store: dict[str, list[LensReadout]]
    where: Selector = field(default_factory=LastToken)
    token_ids: Tensor | Sequence[int] | None = None
    top_k: int = 0
    key: str | None = None
    layer: int | None = None

    def __call__(self, x: Float[Tensor, "batch pos d_model"], hook: HookPoint) -> None:
        """Read the rows; returns None so the forward pass is unchanged."""
        readout = self.lens.readout(
            self.where.gather(x.detach()), self.token_ids, top_k=self.top_k, layer=self.layer
        )
        self.store.setdefault(self.key or str(hook.name), []).append(readout)


def lens_hooks(
    model: Any,
    store: dict[str, list[LensReadout]],
    *,
    layers: SupportsIndex | Iterable[SupportsIndex] | None = None,
    site: Site = "resid_post",
    final_norm: bool = True,
    token_ids: Tensor | Sequence[int] | None = None,
    top_k: int = 0,
    where: Selector | None = None,
) -> list[tuple[str, LensHook]]:
    """Logit-lens hooks over several layers, for ``model.hooks(fwd_hooks=...)``.

    At ``resid_post`` each hook tells the lens its layer, so the last layer is read through
    the final norm also with ``final_norm=False`` (the last-layer rule).

    Args:
        model: A HubModel.
        store: Where readouts go.
        layers: Layers to read (None: all).
        site: Residual-stream site.
        final_norm: Apply the final norm before unembedding.
        token_ids: Target ids.
        top_k: Top-k per row.
        where: Positions to read (default: last token).

    Returns:
        ``(hook_name, hook)`` pairs.
    """
    lens = LogitLens.from_model(model, final_norm=final_norm)
    where = where or LastToken()
    return [
        (
            hook_name(layer, site),
            LensHook(
                lens,
                store,
                where,
                token_ids,
                top_k,
                key=hook_name(layer, site),
                layer=layer if site == "resid_post" else None,
            ),
        )
        for layer in validate_layers(model, layers)
    ]
