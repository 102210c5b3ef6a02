"""Forward-pass overhead: bare transformers, the bare bridge, hublens taps, TL caches, nnsight.

All variants run the same ``(batch, pos)`` token ids (no padding) under ``torch.no_grad()`` and
keep what they capture alive until the call returns, as a user's code would.
"""

from __future__ import annotations

import copy
import importlib.util
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from hublens.hooks import ActivationStore, LastToken, LogitLens, capture_hooks, hook_name

#: Variant names, in table order.
HF = "transformers forward"
BRIDGE = "bridge forward"
CAPTURE = "bridge + hublens capture (last token, every layer)"
LENS = "bridge + capture + logit lens (2 targets + top-5, every layer)"
TL_ALL = "TL run_with_cache (every hook)"
TL_RESID = "TL run_with_cache (resid_post only)"
NNSIGHT = "nnsight trace saving the same last tokens"
USER = "bridge + your hooks"


def nnsight_available() -> bool:
    """Whether the optional nnsight extra is installed."""
    return importlib.util.find_spec("nnsight") is not None


def nnsight_model(reference: Any, tokenizer: Any) -> Any:
    """An nnsight LanguageModel around a private copy of the reference model."""
    import warnings

    from nnsight import LanguageModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return LanguageModel(copy.deepcopy(reference), tokenizer=tokenizer)


def _decoder_layers(hf: Any) -> Any:
    return hf.model.layers


def nnsight_last_tokens(lm: Any, ids: Tensor, mask: Tensor | None = None) -> list[Tensor]:
    """Save every decoder layer's output through nnsight; returns full ``(batch, pos, d)``."""
    saved: list[Any] = []
    kwargs = {} if mask is None else {"attention_mask": mask}
    with torch.no_grad(), lm.trace(ids, **kwargs):
        for layer in lm.model.layers:
            saved.append(layer.output.save())
    return [s[0] if isinstance(s, tuple) else s for s in saved]


def forward_variants(
    model: Any,
    reference: Any | None,
    ids: Tensor,
    *,
    targets: Sequence[int],
    nnsight: bool = True,
    user_hooks: Callable[[Any], list[tuple[str, Any]]] | None = None,
) -> dict[str, Callable[[], Any]]:
    """The variants to time, name -> callable (see module constants)."""
    n_layers = model.n_layers
    names = [hook_name(layer) for layer in range(n_layers)]
    lens = LogitLens.from_model(model, final_norm=True)
    target_ids = torch.tensor(list(targets))
    variants: dict[str, Callable[[], Any]] = {}

    if reference is not None:

        def hf() -> Any:
            with torch.no_grad():
                return reference(ids).logits

        variants[HF] = hf

    def bridge() -> Any:
        with torch.no_grad():
            return model(ids)

    def capture() -> Any:
        store = ActivationStore()
        with torch.no_grad(), model.hooks(fwd_hooks=capture_hooks(model, store, where=LastToken())):
            logits = model(ids)
        return logits, store

    def with_lens() -> Any:
        logits, store = capture()
        return logits, lens.readout(store.stack(names), target_ids, top_k=5)

    def tl_all() -> Any:
        with torch.no_grad():
            return model.run_with_cache(ids)

    def tl_resid() -> Any:
        with torch.no_grad():
            return model.run_with_cache(ids, names_filter=names)

    variants[BRIDGE] = bridge
    variants[CAPTURE] = capture
    variants[LENS] = with_lens
    variants[TL_ALL] = tl_all
    variants[TL_RESID] = tl_resid
    if nnsight and reference is not None and nnsight_available():
        lm = nnsight_model(reference, model.tokenizer)

        def nn() -> Any:
            return [s[:, -1] for s in nnsight_last_tokens(lm, ids)]

        variants[NNSIGHT] = nn
    if user_hooks is not None:
        hooks = user_hooks(model)

        def user() -> Any:
            with torch.no_grad(), model.hooks(fwd_hooks=hooks):
                return model(ids)

        variants[USER] = user
    return variants


def check_forward_agreement(model: Any, reference: Any | None, ids: Tensor) -> dict[str, float]:
    """Max |difference| of what the variants compute, so a fast wrong variant cannot pass."""
    out: dict[str, float] = {}
    with torch.no_grad():
        bridge_logits = model(ids)
        if reference is not None:
            out["bridge vs transformers logits"] = float(
                (bridge_logits - reference(ids).logits).abs().max()
            )
        store = ActivationStore()
        with model.hooks(fwd_hooks=capture_hooks(model, store, where=LastToken())):
            model(ids)
        _, cache = model.run_with_cache(ids, names_filter=[hook_name(model.n_layers - 1)])
        tl_last = cache[hook_name(model.n_layers - 1)][:, -1]
        out["capture vs run_with_cache (last layer)"] = float(
            (store.tensor(hook_name(model.n_layers - 1)) - tl_last).abs().max()
        )
    return out
