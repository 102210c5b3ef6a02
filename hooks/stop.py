"""Stop a forward pass early: TransformerLens's ``stop_at_layer``, extended past the last block.

The bridge's own ``forward(..., stop_at_layer=k)`` stops *before* block ``k`` and returns the
residual entering it, so it cannot stop after the last block (there is no block
``n_layers``). :func:`forward_until` accepts ``k = n_layers`` too: then a hook at the last
block's ``resid_post`` raises TransformerLens's own ``StopAtLayerException``, which the bridge's
forward catches and answers with the tensor it carries, exactly as it does for
``stop_at_layer``. Either way the final norm and the unembedding never run.
"""

from __future__ import annotations

import operator
from typing import Any, SupportsIndex

from jaxtyping import Float
from torch import Tensor
from transformer_lens.hook_points import HookPoint
from transformer_lens.model_bridge.exceptions import StopAtLayerException

from hublens.hooks.names import hook_name, n_layers_of


def _stop(x: Tensor, hook: HookPoint) -> None:
    raise StopAtLayerException(x)


def forward_until(
    model: Any, input: Any, stop_at_layer: SupportsIndex, **forward_kwargs: Any
) -> Float[Tensor, "batch pos d_model"]:
    """Run the bridge up to block ``stop_at_layer`` and return the residual entering it.

    ``stop_at_layer=k`` returns ``resid_post`` of block ``k - 1`` (for ``k < n_layers`` that is
    what ``blocks.{k}.hook_resid_pre`` sees); ``k = n_layers`` returns the last block's output
    before the final norm. Hooks attached by the caller (``model.hooks(...)``) run as usual
    on the blocks that execute; gradients flow through the returned tensor.

    Args:
        model: A HubModel or TransformerBridge.
        input: What the bridge's forward takes first (token ids, or embeddings).
        stop_at_layer: ``0..n_layers``.
        **forward_kwargs: Passed to the bridge's forward (e.g. ``attention_mask``).

    Returns:
        The residual stream, ``(batch, pos, d_model)``.

    Raises:
        ValueError: ``stop_at_layer`` outside ``0..n_layers``.

    Example:
        >>> h = forward_until(model, batch.ids, model.n_layers)  # doctest: +SKIP
    """
    bridge = getattr(model, "bridge", model)
    n = n_layers_of(model)
    if isinstance(stop_at_layer, bool):
        raise TypeError(f"stop_at_layer={stop_at_layer!r}: pass an int in 0..{n}.")
    k = operator.index(stop_at_layer)
    if not 0 <= k <= n:
        raise ValueError(
            f"stop_at_layer={k}: pass 0..{n} ({n} stops after the last block, before the "
            "final norm)."
        )
    if k < n:
        return bridge(input, stop_at_layer=k, **forward_kwargs)
    with bridge.hooks(fwd_hooks=[(hook_name(n - 1), _stop)]):
        out = bridge(input, **forward_kwargs)
    if not isinstance(out, Tensor) or out.shape[-1] != int(bridge.cfg.d_model):
        raise RuntimeError(
            f"The bridge did not stop at {hook_name(n - 1)}; this architecture's last block "
            "does not fire it, so forward_until cannot stop there."
        )
    return out
