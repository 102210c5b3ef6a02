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
