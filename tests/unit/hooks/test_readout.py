"""The readout core: the last-layer rule, per-layer ``layer=``, a transform lens, soft-cap and bias.

Every expectation is computed on the plain transformers model (its forward, its hidden states,
its ``model.norm`` and ``lm_head``) or by hand, never through hublens's lens.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch

from hublens.hooks import Lens, LogitLens, Unembed, hook_name, lens_hooks
from hublens.hooks.positions import AllPositions
from tests.helpers.lens_reference import hidden_states, lens_logprobs, token_ids
from tests.helpers.tolerance import reference_lens_atol

TEXT = "The cat sleeps on the warm mat."


def _model_logprobs(reference, ids):
    """log_softmax of the plain HF model's own logits (its forward, nothing of hublens)."""
    with torch.no_grad():
        return torch.log_softmax(reference(input_ids=ids).logits[0].float(), -1)


@pytest.mark.parametrize("final_norm", [False, True])
def test_last_layer_equals_model_logprobs_under_every_setting(tiny, final_norm):
    model, reference, _ = tiny
    ids = torch.tensor([token_ids(model, TEXT)])
    h = hidden_states(reference, ids)  # (L, pos, d); last layer: the block's raw output
    n = model.n_layers
    lens = LogitLens.from_model(model, final_norm=final_norm)
    assert lens.n_layers == n and lens.last_layer_norm
    lens.max_chunk_elements = 1000  # many vocabulary chunks
    everything = torch.arange(model.d_vocab)
    out = lens.readout(h, everything, top_k=3, layer=range(n))
    expected_last = _model_logprobs(reference, ids)
    atol = reference_lens_atol(reference, h[-1])
    torch.testing.assert_close(out.target_logprobs[-1], expected_last, atol=atol, rtol=0)
    assert torch.equal(out.top_ids[-1], expected_last.topk(3, -1).indices)
    assert out.last_layer_norm is (not final_norm)
    # The other layers keep the lens's own setting.
    inner = lens_logprobs(reference, h[:-1], final_norm=final_norm)
    atol = reference_lens_atol(reference, h[:-1], final_norm=final_norm)
    torch.testing.assert_close(out.target_logprobs[:-1], inner, atol=atol, rtol=0)
    # logprobs / expectation / one int layer follow the same rule.
    full = lens.logprobs(h[-1], layer=n - 1)
    torch.testing.assert_close(full, expected_last, atol=atol + 1e-5, rtol=0)
    one_hot = torch.zeros(model.d_vocab, 2)
    one_hot[5, 0] = one_hot[17, 1] = 1.0
    got = lens.expectation(h[-1], one_hot, layer=-1)
    torch.testing.assert_close(got, expected_last[:, [5, 17]].exp(), atol=1e-5, rtol=1e-4)


def test_without_layer_the_lens_cannot_apply_the_rule(tiny):
    model, reference, _ = tiny
    ids = torch.tensor([token_ids(model, TEXT)])
    h = hidden_states(reference, ids)[-1]
    out = LogitLens.from_model(model, final_norm=False).readout(h, [5, 17])
    raw = lens_logprobs(reference, h, final_norm=False)[:, [5, 17]]
    torch.testing.assert_close(out.target_logprobs, raw, atol=1e-4, rtol=0)
    assert out.last_layer_norm is False and out.final_norm is False


def test_lens_hooks_without_norm_read_the_models_output_at_the_last_layer(tiny):
    model, reference, _ = tiny
    ids = torch.tensor([token_ids(model, TEXT)])
    store: dict = {}
    hooks = lens_hooks(model, store, final_norm=False, token_ids=[3, 9], where=AllPositions())
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        model(ids)
    last = store[hook_name(model.n_layers - 1)][0]
    expected = _model_logprobs(reference, ids)[:, [3, 9]]
    torch.testing.assert_close(last.target_logprobs[0], expected, atol=1e-4, rtol=0)
    assert last.last_layer_norm
    first = store[hook_name(0)][0]
    raw = lens_logprobs(reference, hidden_states(reference, ids)[0], final_norm=False)
    torch.testing.assert_close(first.target_logprobs[0], raw[:, [3, 9]], atol=1e-4, rtol=0)


class ShiftLens(Lens):
    """A per-layer lens in a few lines: add a learned-style offset of each layer first."""

    def __init__(self, unembed: Unembed, shifts: torch.Tensor) -> None:
        super().__init__(unembed, final_norm=False, n_layers=shifts.shape[0])
        self.shifts = shifts

    def transform(self, h, layer):
        if layer is None:
            raise ValueError("ShiftLens needs layer=")
        return h + self.shifts[layer]


def test_a_transform_lens_is_one_small_class(tiny):
    model, reference, _ = tiny
    ids = torch.tensor([token_ids(model, TEXT)])
    h = hidden_states(reference, ids)
    n = model.n_layers
    torch.manual_seed(0)
    shifts = torch.randn(n, model.d_model)
    lens = ShiftLens(Unembed.from_model(model), shifts)
    out = lens.readout(h, [4, 8, 15], layer=list(range(n)))
    with torch.no_grad():
        shifted = h + shifts[:, None, :]
        expected = lens_logprobs(reference, shifted, final_norm=False)
        expected[-1] = lens_logprobs(reference, shifted[-1], final_norm=True)
    torch.testing.assert_close(out.target_logprobs, expected[..., [4, 8, 15]], atol=1e-4, rtol=0)
    # The layers are matched to h's blocks: reversed layers give other numbers.
    rev = lens.readout(h, [4, 8, 15], layer=list(reversed(range(n))))
    assert not torch.allclose(rev.target_logprobs[0], out.target_logprobs[0], atol=1e-2)


def test_lens_logits_are_differentiable(tiny):
    model, reference, _ = tiny
    h = torch.randn(3, model.d_model, requires_grad=True)
    LogitLens.from_model(model, final_norm=True).logits(h).logsumexp(-1).sum().backward()
    g = h.grad.clone()
    h.grad = None
    reference.lm_head(reference.model.norm(h)).float().logsumexp(-1).sum().backward()
    torch.testing.assert_close(g, h.grad, atol=1e-5, rtol=1e-4)


def test_bias_and_softcap_by_hand():
    torch.manual_seed(0)
    weight, bias = torch.randn(3000, 16), torch.randn(3000)
    h = torch.randn(2, 3, 16) * 4
    lens = LogitLens(weight, bias, softcap=5.0, max_chunk_elements=2048)
    out = lens.readout(h, [0, 1234, 2999], top_k=2)
    logits = torch.tanh((h @ weight.T + bias) / 5.0) * 5.0
    full = torch.log_softmax(logits, -1)
    torch.testing.assert_close(out.target_logprobs, full[..., [0, 1234, 2999]])
    torch.testing.assert_close(out.top_logprobs, full.topk(2, -1).values)
    assert out.final_norm is False and not lens.last_layer_norm


def test_layer_argument_is_checked(tiny):
    model, _, _ = tiny
    lens = LogitLens.from_model(model, final_norm=False)
    n = model.n_layers
    h = torch.randn(n, 2, model.d_model)
    assert lens.readout(h, [1], layer=np.arange(n)).last_layer_norm  # numpy ints work
    assert lens.readout(h[0], [1], layer=np.int64(n - 1)).last_layer_norm
    with pytest.raises(ValueError, match="layer has 2 entries"):
        lens.readout(h, [1], layer=[0, 1])
    with pytest.raises(ValueError, match="out of range"):
        lens.readout(h[0], [1], layer=n)
    with pytest.raises(TypeError, match="layer"):
        lens.readout(h[0], [1], layer=True)
    with pytest.raises(TypeError, match="layer"):
        lens.readout(h, [1], layer=[0.5] * n)  # refused by the test run's type checker first
    with pytest.raises(TypeError, match="layer contains 0.5"):
        inspect.unwrap(Lens._layers)(lens, h, [0.5] * n)  # the lens's own check
    bare = LogitLens(model.unembedding_weight, norm=model.final_norm, final_norm=False)
    with pytest.raises(ValueError, match="n_layers"):
        bare.readout(h[0], [1], layer=-1)
    assert not bare.readout(h[0], [1], layer=n - 1).last_layer_norm  # no n_layers: no rule
