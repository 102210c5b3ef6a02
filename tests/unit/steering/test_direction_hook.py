"""The intervention hook of the vision/audio experiments, against hand computations."""

from __future__ import annotations

import torch
from transformer_lens.hook_points import HookPoint

from hublens.steering import DirectionHook

H = HookPoint()


def test_direction_hook_add_replace_and_guard():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 8)
    d = torch.randn(8)
    out = DirectionHook(d, [1, 3], "add", alpha=2.0, relative=False)(x, H)
    expected = x.clone()
    expected[:, [1, 3]] += 2.0 * d
    assert torch.allclose(out, expected)
    rel = DirectionHook(d, [2], "add", alpha=0.5)(x, H)
    assert torch.allclose(
        rel[:, 2], x[:, 2] + 0.5 * x[:, 2].norm(dim=-1, keepdim=True) * d / d.norm()
    )
    rep = DirectionHook(d, [0], "replace")(x, H)
    assert torch.allclose(rep[:, 0], x[:, 0].norm(dim=-1, keepdim=True) * d / d.norm())
    assert torch.equal(rep[:, 1:], x[:, 1:])
    per_row = torch.randn(2, 8)
    rows = DirectionHook(per_row, [4], "add", alpha=1.0, relative=False)(x, H)
    assert torch.allclose(rows[:, 4], x[:, 4] + per_row)
    step = x[:, :1]
    assert DirectionHook(d, [0], prompt_len=5)(step, H) is step  # cached decode step


def test_direction_hook_on_a_model_equals_hf_edit_by_hand(tiny):
    model, reference, _ = tiny
    from tests.helpers.hf_steering import edit_post

    ids = model.tokenize(["The cat sleeps on the warm mat.", "Le chat dort sur le tapis."]).ids
    ids = ids[:, :7]  # two unpadded rows of equal length
    positions, layer = [2, 5], 1
    d = torch.randn(model.d_model)
    per_row = torch.randn(2, model.d_model)
    cases = [
        (DirectionHook(d, positions, "add", alpha=0.7), "relative"),
        (DirectionHook(per_row, positions, "add", alpha=3.0, relative=False), "per_row"),
    ]
    for hook, kind in cases:

        def edit(h, kind=kind):
            for p in positions:
                if kind == "relative":
                    h[:, p] = h[:, p] + 0.7 * h[:, p].norm(dim=-1, keepdim=True) * d / d.norm()
                else:
                    h[:, p] = h[:, p] + 3.0 * per_row
            return h

        with torch.no_grad():
            plain = model(ids)
            with model.hooks(fwd_hooks=[(f"blocks.{layer}.hook_resid_post", hook)]):
                got = model(ids)
            with edit_post(reference, layer, edit):
                expected = reference(input_ids=ids).logits
        assert not torch.allclose(got, plain, atol=1e-3), kind  # the hook did something
        assert torch.allclose(got, expected, atol=1e-4), kind
