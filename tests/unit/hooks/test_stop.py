"""forward_until: the bridge stopped after a block equals plain transformers' hidden states."""

from __future__ import annotations

import pytest
import torch

from hublens.hooks import attached_hooks, forward_until, hook_name
from tests.helpers.lens_reference import token_ids

TEXT = "The cat sleeps on the warm mat."


def _hf_states(reference, ids):
    """Input of every block and the last block's raw output, from plain transformers."""
    captured = {}
    handle = reference.model.layers[-1].register_forward_hook(
        lambda m, a, o: captured.__setitem__("last", o[0] if isinstance(o, tuple) else o)
    )
    try:
        with torch.no_grad():
            hs = reference(input_ids=ids, output_hidden_states=True).hidden_states
    finally:
        handle.remove()
    return list(hs[:-1]) + [captured["last"]]  # index k: the residual entering block k


def test_forward_until_every_layer_equals_hf(tiny):
    model, reference, _ = tiny
    ids = torch.tensor([token_ids(model, TEXT)])
    expected = _hf_states(reference, ids)
    calls = []
    handle = model.final_norm.register_forward_hook(lambda *a: calls.append(1))
    try:
        for k in range(model.n_layers + 1):
            with torch.no_grad():
                got = forward_until(model, ids, k)
            torch.testing.assert_close(got, expected[k], atol=1e-5, rtol=1e-5)
    finally:
        handle.remove()
    assert calls == []  # the final norm (and so the unembedding) never ran
    assert attached_hooks(model) == []


def test_forward_until_runs_the_callers_hooks_and_keeps_gradients(tiny):
    model, reference, _ = tiny
    ids = torch.tensor([token_ids(model, TEXT)])
    n = model.n_layers
    delta = torch.zeros(model.d_model, requires_grad=True)
    shift = torch.full((model.d_model,), 0.25)

    def add_delta(x, hook):
        return x + delta

    def add_shift(x, hook):
        return x + shift

    hooks = [("hook_embed", add_delta), (hook_name(n - 1), add_shift)]
    with model.hooks(fwd_hooks=hooks):
        got = forward_until(model, ids, n)
    expected = _hf_states(reference, ids)[n] + shift
    torch.testing.assert_close(got.detach(), expected, atol=1e-5, rtol=1e-5)
    got.sum().backward()
    assert delta.grad is not None and float(delta.grad.abs().sum()) > 0
    assert attached_hooks(model) == []


def test_forward_until_bad_layer(tiny):
    model, _, _ = tiny
    ids = torch.tensor([[1, 2, 3]])
    for bad in (-1, model.n_layers + 1):
        with pytest.raises(ValueError, match="stop_at_layer"):
            forward_until(model, ids, bad)
    with pytest.raises(TypeError, match="stop_at_layer"):
        forward_until(model, ids, True)
    assert attached_hooks(model) == []
