"""Logit-lens readout: hublens's LogitLens against TransformerLens's own ``logit_lens``.

Both read the same rows (the last token of every row at every layer's ``resid_post``, final
norm applied) and return the same outputs (log-probs of the requested target ids). The floor is
one batched matmul of those rows (already normed) against the unembedding (the readout core's
own ``Unembed.logits`` over the whole vocabulary at once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from hublens.hooks import LogitLens, hook_name

HUBLENS = "hublens LogitLens.readout"
TL = "TL logit_lens(cache, targets=..., return_type='log_probs')"
MATMUL = "one batched matmul over the rows (floor)"


def lens_inputs(model: Any, ids: Tensor) -> tuple[Any, Tensor]:
    """A TL cache of every layer's ``resid_post`` and the ``(layer, batch, d)`` last rows."""
    n = model.n_layers
    # TL's stack: resid_pre of every block, then the last resid_post (resid_pre of block l + 1
    # is resid_post of block l).
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n)] + [hook_name(n - 1)]
    with torch.no_grad():
        _, cache = model.run_with_cache(ids, names_filter=names)
    rows = torch.stack([cache[name][:, -1] for name in names[1:]])
    return cache, rows


def lens_variants(
    model: Any, cache: Any, rows: Tensor, targets: Sequence[int]
) -> tuple[dict[str, Callable[[], Any]], dict[str, float]]:
    """The readouts to time and the max |difference| of hublens's against TL's values."""
    from transformer_lens.tools.analysis.logit_lens import logit_lens

    lens = LogitLens.from_model(model, final_norm=True)
    target_ids = torch.tensor(list(targets))
    shared = [int(t) for t in targets]  # a list: the same targets for every row (TL's API)
    layers = list(range(1, model.n_layers + 1))  # stack entries after each block ("final_post")
    unembed = lens.unembed
    flat = rows.reshape(-1, rows.shape[-1])
    # The rows the matmul floor multiplies, normed once here (the norm is not timed).
    normed = unembed.prepare(flat, torch.ones(flat.shape[0], dtype=torch.bool))

    def ours() -> Tensor:
        readout = lens.readout(rows, target_ids)
        assert readout.target_logprobs is not None
        return readout.target_logprobs

    def theirs() -> Tensor:
        with torch.no_grad():
            result = logit_lens(cache, layers=layers, targets=shared, return_type="log_probs")
        return result.readout.values

    def floor() -> Tensor:
        with torch.no_grad():
            return unembed.logits(normed)  # one matmul over the whole vocabulary, no chunks

    agreement = {"hublens vs TL target log-probs": float((ours() - theirs()).abs().max())}
    return {HUBLENS: ours, TL: theirs, MATMUL: floor}, agreement
