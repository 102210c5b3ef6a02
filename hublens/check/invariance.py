"""Inputs: the BOS policy and its effect, right-padding and batch-size invariance.

* ``inputs.bos``: every row starts with exactly one BOS when the model's policy prepends it,
  and none otherwise (a tokenizer that adds BOS itself on top of ``prepend_bos`` doubles it);
  it measures how much the last-token state at the middle and last layer moves with BOS
  toggled (reported: Gemma-3 needs BOS, SmolLM2 has none).
* ``inputs.padding``: each probe text alone (no padding), all together (right-padded) and the
  first two together give the same states at every layer and the same logits at real
  positions, within :func:`~hublens.check.tolerance.state_bound`. The value is the worst ratio
  of the difference to its bound (pass at <= 1).
"""

from __future__ import annotations

import torch

from hublens.check.context import CheckContext
from hublens.check.result import CheckResult
from hublens.check.tolerance import eps_of, relative_difference, state_bound
from hublens.hooks import ActivationStore, AllPositions, capture_hooks, hook_name


def _states(model, batch, layers):
    store = ActivationStore()
    with (
        torch.no_grad(),
        model.hooks(fwd_hooks=capture_hooks(model, store, layers=layers, where=AllPositions())),
    ):
        logits = model(batch.ids, attention_mask=batch.attention_mask)
    return [store.tensor(hook_name(layer)) for layer in layers], logits


def bos(ctx: CheckContext) -> list[CheckResult]:
    """BOS once (or never) per the policy; the last-token state's shift with BOS toggled."""
    model = ctx.model
    tok = model.tokenizer
    bos_id = tok.bos_token_id
    rows = model.encode_rows(ctx.texts)
    problems = []
    for text, row in zip(ctx.texts, rows, strict=True):
        n_bos = next((i for i, t in enumerate(row) if t != bos_id), len(row))
        if model.prepend_bos and n_bos != 1:
            problems.append(f"{text[:20]!r} starts with {n_bos} BOS")
        if not model.prepend_bos and bos_id is not None and n_bos:
            problems.append(f"{text[:20]!r} starts with BOS although prepend_bos=False")
    adds_itself = bool(bos_id is not None and tok("a")["input_ids"][:1] == [bos_id])
    shift: dict[str, float] = {}
    if bos_id is not None:
        text = ctx.texts[0]
        body = tok.encode(text, add_special_tokens=False)
        with_bos = torch.tensor([[bos_id, *body]], device=model.device)
        without = torch.tensor([body], device=model.device)
        layers = sorted({model.n_layers // 2, model.n_layers - 1})
        store_a, store_b = ActivationStore(), ActivationStore()
        with torch.no_grad():
            for ids, store in ((with_bos, store_a), (without, store_b)):
                with model.hooks(fwd_hooks=capture_hooks(model, store, layers=layers)):
                    model(ids)
        for layer in layers:
            a = store_a.tensor(hook_name(layer))[0, -1]
            b = store_b.tensor(hook_name(layer))[0, -1]
            shift[f"layer_{layer}"] = relative_difference(b, a)
    detail = (
        f"prepend_bos={model.prepend_bos} (tokenizer adds BOS itself: {adds_itself}); "
        + (
            "; ".join(problems)
            if problems
            else "one BOS per row"
            if model.prepend_bos
            else "no BOS"
        )
        + (
            f"; last-token state moves {max(shift.values()):.2g} (relative) without/with BOS"
            if shift
            else "; the tokenizer has no BOS token"
        )
    )
    return [
        CheckResult(
            "inputs.bos",
            "fail" if problems else "pass",
            max(shift.values()) if shift else None,
            None,
            "relative",
            detail,
            {
                "prepend_bos": model.prepend_bos,
                "tokenizer_adds_bos": adds_itself,
                "last_token_shift": shift,
                "problems": problems,
            },
        )
    ]


def padding(ctx: CheckContext) -> list[CheckResult]:
    """Right padding and batch size change no real position's state or logits."""
    model = ctx.model
    layers = list(range(model.n_layers))
    eps = eps_of(ctx.dtype)
    alone = [_states(model, model.tokenize([t]), layers) for t in ctx.texts]
    groups = {"all": list(range(len(ctx.texts))), "first_two": [0, 1]}
    worst, where = 0.0, ""
    ratios: dict[str, float] = {}
    for group, members in groups.items():
        batch = model.tokenize([ctx.texts[i] for i in members])
        states, logits = _states(model, batch, layers)
        for row, i in enumerate(members):
            n = int(batch.lengths[row])
            ref_states, ref_logits = alone[i]
            pairs = [
                (f"layer {layer}", states[k][row, :n], ref_states[k][0], layer)
                for k, layer in enumerate(layers)
            ]
            pairs.append(("logits", logits[row, :n], ref_logits[0], model.n_layers))
            for label, ours, ref, depth in pairs:
                ratio = relative_difference(ours, ref) / state_bound(depth, model.d_model, eps=eps)
                key = f"{group}/{label}"
                ratios[key] = max(ratios.get(key, 0.0), ratio)
                if ratio > worst:
                    worst, where = ratio, f"{label} of text {i} in batch '{group}'"
    return [
        CheckResult.bounded(
            "inputs.padding",
            worst,
            1.0,
            unit="x bound",
            detail=f"each text alone vs right-padded batches of {len(ctx.texts)} and 2; worst at "
            f"{where or 'none'}",
            ratios={k: v for k, v in ratios.items() if v > 0.1},
        )
    ]
