"""Held-out quality of a lens: agreement with, and KL to, the model's own final distribution.

:class:`HeldOut` captures every layer's ``resid_post`` rows of a few held-out texts once;
:func:`score` reads them through a lens and compares each layer with the last layer read
through the same lens (the identity there for every fitted lens, so the model's own
log-probs): top-1 agreement and KL(final || lens), averaged over rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hublens.hooks.lens import Lens


@dataclass
class HeldOut:
    """Residual rows of held-out texts, read once, to score each merged lens.

    Attributes:
        rows: ``{layer: (n_rows, d_model)}`` for every layer (``resid_post`` = ``hook_out``).
        n_texts: How many held-out texts the rows come from.
    """

    rows: dict[int, Tensor]
    n_texts: int

    @classmethod
    def capture(
        cls, model: Any, texts: Sequence[str], *, max_seq_len: int, skip_first_positions: int
    ) -> HeldOut:
        """Run ``texts`` once and keep every layer's rows after the skipped positions."""
        bridge = model.bridge
        names = {layer: f"blocks.{layer}.hook_out" for layer in range(model.n_layers)}
        wanted = set(names.values())
        parts: dict[int, list[Tensor]] = {layer: [] for layer in names}
        with torch.no_grad():
            for text in texts:
                tokens = bridge.to_tokens(text)[:, :max_seq_len]
                _, cache = bridge.run_with_cache(tokens, names_filter=lambda n: n in wanted)
                for layer, name in names.items():
                    parts[layer].append(cache[name][0, skip_first_positions:].float().cpu())
        return cls({k: torch.cat(v) for k, v in parts.items()}, len(texts))


def score(lens: Lens, held: HeldOut, n_layers: int, *, chunk: int = 32) -> dict[str, Any]:
    """Per layer: top-1 agreement with the model's own distribution and KL(final || lens).

    The model's own distribution is the last layer read through ``lens`` (the identity there
    for every fitted lens, so it equals the model's log-probs).
    """
    last = n_layers - 1
    n = held.rows[last].shape[0]
    kl = torch.zeros(n_layers - 1, dtype=torch.float64)
    agree = torch.zeros(n_layers - 1, dtype=torch.float64)
    top1 = torch.zeros(n_layers - 1, n, dtype=torch.long)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        final = lens.logprobs(held.rows[last][start:stop], layer=last)
        p_final = final.exp()
        final_top = final.argmax(-1)
        for layer in range(n_layers - 1):
            lp = lens.logprobs(held.rows[layer][start:stop], layer=layer)
            kl[layer] += (p_final * (final - lp)).sum(-1).double().sum()
            ids = lp.argmax(-1)
            agree[layer] += (ids == final_top).double().sum()
            top1[layer, start:stop] = ids
    return {
        "kl": (kl / n).tolist(),
        "top1_agreement": (agree / n).tolist(),
        "top1_ids": top1,
        "n_rows": n,
    }
