"""Matrix: logits, every layer's state and a logit-lens readout equal plain transformers."""

from __future__ import annotations

import torch

from hublens.hooks import (
    ActivationStore,
    AllPositions,
    LastToken,
    LogitLens,
    capture_hooks,
    hook_name,
)
from tests.unit.matrix.families import TEXTS, hf_states, lens_logprobs


def test_logits_and_states_equal_transformers(family):
    _, model, reference, _ = family
    batch = model.tokenize(TEXTS)
    store = ActivationStore()
    with torch.no_grad(), model.hooks(fwd_hooks=capture_hooks(model, store, where=AllPositions())):
        ours = model(batch.ids, attention_mask=batch.attention_mask)
    theirs, states = hf_states(reference, batch)
    mask = batch.attention_mask.bool()
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-4, rtol=0)
    for layer in range(model.n_layers):
        assert torch.allclose(
            store.tensor(hook_name(layer))[mask], states[layer][mask], atol=1e-4, rtol=0
        ), layer


def test_lens_readout_equals_hand_computation(family):
    _, model, reference, _ = family
    batch = model.tokenize(TEXTS)
    store = ActivationStore()
    where = LastToken(batch.lengths)
    with (
        torch.no_grad(),
        model.hooks(fwd_hooks=capture_hooks(model, store, layers=[0], where=where)),
    ):
        model(batch.ids, attention_mask=batch.attention_mask)
    h = store.tensor(hook_name(0))  # last token of each row
    ids = torch.tensor([5, 17, 300])
    ours = LogitLens.from_model(model, final_norm=True).readout(h, ids, layer=0).target_logprobs
    _, states = hf_states(reference, batch)
    rows = states[0][torch.arange(len(TEXTS)), batch.lengths - 1]
    theirs = lens_logprobs(reference, rows)[:, ids]
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0)
