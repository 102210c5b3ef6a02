"""Numerics: the lens at the last layer, captured states against transformers, the dtype's error.

* ``numerics.last_layer_lens``: the lens read at the model's last layer equals the model's own
  log-probs at every real position of a right-padded batch; the final norm's statistics must be
  recomputed per row (a lens that reuses one row's cached norm scale, TransformerLens #1076,
  fails here by 0.1 nats or more).
* ``numerics.hidden_states``: ``blocks.{l}.hook_resid_post`` captured by hublens equals the
  ``hidden_states[l + 1]`` that the Hugging Face module under the bridge returns with
  ``output_hidden_states=True`` (the final-normed last one against the final norm of the
  capture), at sampled layers.
* ``numerics.dtype_lens``: for bf16/fp16 models, the lens's log-probs against the same model in
  fp32 (a warning above the bound of the unembedding alone: the rest is the dtype's own error
  through the layers, which a reader should know; skipped on fp32 models).
"""

from __future__ import annotations

import copy

import torch

from hublens.check.context import CheckContext
from hublens.check.result import CheckResult, Status
from hublens.check.tolerance import eps_of, logprob_bound, relative_difference, state_bound
from hublens.hooks import ActivationStore, AllPositions, LogitLens, capture_hooks, hook_name


def _lens(ctx: CheckContext):
    return ctx.lens if ctx.lens is not None else LogitLens.from_model(ctx.model, final_norm=False)


def _capture(model, batch, layers):
    store = ActivationStore()
    hooks = capture_hooks(model, store, layers=layers, where=AllPositions())
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        logits = model(batch.ids, attention_mask=batch.attention_mask)
    return logits, {layer: store.tensor(hook_name(layer)) for layer in layers}


@torch.no_grad()
def last_layer_lens(ctx: CheckContext) -> list[CheckResult]:
    """The lens at the last layer against the model's own log-probs."""
    model = ctx.model
    last = model.n_layers - 1
    batch = model.tokenize(ctx.texts)
    logits, states = _capture(model, batch, [last])
    mask = batch.attention_mask.bool()
    rows = states[last][mask]
    lens = _lens(ctx)
    ours = lens.logprobs(rows, layer=last)
    theirs = torch.log_softmax(logits[mask].float(), dim=-1)
    value = float((ours - theirs.to(ours.device)).abs().max())
    normed = model.final_norm(rows) if model.final_norm is not None else rows
    bound = logprob_bound(normed.float(), model.unembedding_weight, eps=eps_of(ctx.dtype))
    return [
        CheckResult.bounded(
            "numerics.last_layer_lens",
            value,
            bound,
            unit="nats",
            detail=f"lens at layer {last} vs the model's log-probs, {int(mask.sum())} rows",
            lens=type(lens).__name__,
        )
    ]


@torch.no_grad()
def hidden_states(ctx: CheckContext) -> list[CheckResult]:
    """Captured ``resid_post`` against the HF module's own ``output_hidden_states``."""
    model = ctx.model
    layers = ctx.layers
    batch = model.tokenize(ctx.texts)
    _, states = _capture(model, batch, layers)
    hf = model.bridge.original_model
    out = hf(input_ids=batch.ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    reference = out.hidden_states
    if len(reference) != model.n_layers + 1:
        return [
            CheckResult(
                "numerics.hidden_states",
                "fail",
                detail=f"transformers returned {len(reference)} hidden states for "
                f"{model.n_layers} blocks; hook names do not map onto its layers",
            )
        ]
    mask = batch.attention_mask.bool()
    # The same computation on both sides: allow one block's reordered sums, no more.
    bound = state_bound(0, model.d_model, eps=eps_of(ctx.dtype))
    per_layer = {}
    for layer in layers:
        ours = states[layer]
        if layer == model.n_layers - 1 and model.final_norm is not None:
            ours = model.final_norm(ours)  # transformers' last hidden state is after the norm
        per_layer[layer] = relative_difference(ours[mask], reference[layer + 1][mask])
    return [
        CheckResult.bounded(
            "numerics.hidden_states",
            max(per_layer.values()),
            bound,
            unit="relative",
            detail=f"resid_post vs transformers' hidden_states at layers {layers}",
            per_layer=per_layer,
        )
    ]


@torch.no_grad()
def dtype_lens(ctx: CheckContext) -> list[CheckResult]:
    """The lens's log-probs in the model's dtype against an fp32 copy of the model."""
    model = ctx.model
    name = "numerics.dtype_lens"
    if ctx.dtype == torch.float32 or ctx.dtype == torch.float64:
        return [CheckResult.skipped(name, f"the model is {ctx.dtype}; nothing to compare")]
    from hublens.model import HubModel

    bridge32 = copy.deepcopy(model.bridge).to(torch.float32)
    model32 = HubModel(
        bridge32,
        model.tokenizer,
        prepend_bos=model.prepend_bos,
        dominant_language=model.dominant_language,
        provenance=model.provenance,
    )
    layers = ctx.layers
    batch = model.tokenize(ctx.texts)
    mask = batch.attention_mask.bool()
    _, low = _capture(model, batch, layers)
    _, high = _capture(model32, batch, layers)
    lens, lens32 = LogitLens.from_model(model), LogitLens.from_model(model32)
    worst, per_layer = 0.0, {}
    for layer in layers:
        a = lens.logprobs(low[layer][mask], layer=layer)
        b = lens32.logprobs(high[layer][mask], layer=layer)
        top = b.topk(10, dim=-1).indices  # the tokens a reader looks at
        per_layer[layer] = float((a.gather(-1, top) - b.gather(-1, top)).abs().max())
        worst = max(worst, per_layer[layer])
    rows = high[layers[-1]][mask]
    normed = model32.final_norm(rows) if model32.final_norm is not None else rows
    bound = logprob_bound(normed, model32.unembedding_weight, eps=eps_of(ctx.dtype))
    del bridge32, model32
    status: Status = "pass" if worst <= bound else "warn"
    return [
        CheckResult(
            name,
            status,
            worst,
            bound,
            "nats",
            f"{ctx.dtype} vs fp32 lens log-probs of the top-10 tokens at layers {layers} "
            "(bound: the unembedding's rounding alone)",
            {"per_layer": per_layer},
        )
    ]
