"""The logit lens against hand computations and the model's own log-probs."""

from __future__ import annotations

import pytest
import torch

from hublens.hooks import (
    ActivationStore,
    AllPositions,
    LastToken,
    LogitLens,
    capture_hooks,
    hook_name,
    lens_hooks,
)

TEXTS = ["The cat sleeps on the warm mat.", "猫在睡觉"]


def _captured_last_layer(model, batch):
    store = ActivationStore()
    last = model.n_layers - 1
    with (
        torch.no_grad(),
        model.hooks(fwd_hooks=capture_hooks(model, store, layers=last, where=AllPositions())),
    ):
        logits = model(batch.ids, attention_mask=batch.attention_mask)
    return store.tensor(hook_name(last)), logits


def test_lens_at_last_layer_equals_model_logprobs(tiny):
    model, reference, _ = tiny
    batch = model.tokenize(TEXTS)
    h, _ = _captured_last_layer(model, batch)
    with torch.no_grad():
        expected = torch.log_softmax(
            reference(input_ids=batch.ids, attention_mask=batch.attention_mask).logits.float(), -1
        )
    lens = LogitLens.from_model(model, final_norm=True)
    lens.max_chunk_elements = 1000  # force many vocabulary chunks
    ids = torch.arange(model.d_vocab)
    out = lens.readout(h, ids, top_k=5)
    mask = batch.attention_mask.bool()
    assert torch.allclose(out.target_logprobs[mask], expected[mask], atol=1e-4, rtol=0)
    top = expected.topk(5, dim=-1)
    assert torch.allclose(out.top_logprobs[mask], top.values[mask], atol=1e-4, rtol=0)
    assert torch.equal(out.top_ids[mask], top.indices[mask])
    assert out.final_norm is True


def test_lens_without_norm_is_raw_unembedding(tiny):
    model, reference, _ = tiny
    batch = model.tokenize(TEXTS)
    h, _ = _captured_last_layer(model, batch)
    weight = reference.lm_head.weight.detach()
    expected = torch.log_softmax(h.float() @ weight.T.float(), -1)
    targets = torch.tensor([5, 17, 42])
    out = LogitLens.from_model(model, final_norm=False).readout(h, targets)
    assert torch.allclose(out.target_logprobs, expected[..., targets], atol=1e-4, rtol=0)
    assert out.final_norm is False


def test_per_row_targets(tiny):
    model, _, _ = tiny
    h = torch.randn(4, model.d_model)
    lens = LogitLens.from_model(model)
    full = lens.logprobs(h)
    ids = torch.tensor([[1], [2], [3], [4]])
    out = lens.readout(h, ids)
    assert torch.allclose(out.target_logprobs[:, 0], full[torch.arange(4), ids[:, 0]], atol=1e-5)


def test_lens_hooks_read_during_forward(tiny):
    model, reference, _ = tiny
    batch = model.tokenize(TEXTS)
    store: dict = {}
    targets = [3, 9]
    with (
        torch.no_grad(),
        model.hooks(
            fwd_hooks=lens_hooks(
                model, store, token_ids=targets, top_k=2, where=LastToken(batch.lengths)
            )
        ),
    ):
        model(batch.ids, attention_mask=batch.attention_mask)
    assert sorted(store) == sorted(hook_name(i) for i in range(model.n_layers))
    # Independent: HF hidden states at each row's last token, final norm, unembedding.
    with torch.no_grad():
        out = reference(
            input_ids=batch.ids, attention_mask=batch.attention_mask, output_hidden_states=True
        )
    rows = torch.arange(len(TEXTS))
    last = batch.lengths - 1
    for layer in range(model.n_layers - 1):
        h = out.hidden_states[layer + 1][rows, last]
        logits = reference.lm_head(reference.model.norm(h))
        expected = torch.log_softmax(logits.float(), -1)[:, targets]
        got = store[hook_name(layer)][0].target_logprobs
        assert torch.allclose(got, expected, atol=1e-4, rtol=0), layer


def test_lens_bad_input(tiny):
    model, _, _ = tiny
    lens = LogitLens.from_model(model)
    h = torch.randn(2, model.d_model)
    with pytest.raises(ValueError, match="token_ids must lie"):
        lens.readout(h, [model.d_vocab])
    with pytest.raises(ValueError, match="d_model"):
        lens.readout(torch.randn(2, model.d_model + 1), [1])
    with pytest.raises(ValueError, match="NaN"):
        lens.readout(torch.full((2, model.d_model), float("nan")), [1])
    with pytest.raises(ValueError, match="top_k"):
        lens.readout(h, [1], top_k=-1)
    with pytest.raises(ValueError, match="empty"):
        lens.readout(h, [])
