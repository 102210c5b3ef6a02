"""HubModel on tiny random Llama and Gemma-3 models against plain transformers."""

from __future__ import annotations

import pytest
import torch

import hublens
from hublens.hooks import ActivationStore, AllPositions, capture_hooks, hook_name

TEXTS = ["The cat sleeps on the warm mat.", "猫在睡觉", "3+2=5"]


def test_logits_equal_plain_transformers(tiny):
    model, reference, _ = tiny
    batch = model.tokenize(TEXTS)
    with torch.no_grad():
        ours = model(batch.ids, attention_mask=batch.attention_mask)
        theirs = reference(input_ids=batch.ids, attention_mask=batch.attention_mask).logits
    mask = batch.attention_mask.bool()
    assert ours.shape == theirs.shape
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-4, rtol=0)


def test_capture_every_layer_equals_hidden_states(tiny):
    model, reference, _ = tiny
    batch = model.tokenize(TEXTS)
    store = ActivationStore()
    with torch.no_grad(), model.hooks(fwd_hooks=capture_hooks(model, store, where=AllPositions())):
        model(batch.ids, attention_mask=batch.attention_mask)
    # Independent reference: plain PyTorch forward hooks on the HF decoder layers.
    outputs = {}
    handles = [
        layer.register_forward_hook(
            lambda mod, args, out, i=i: outputs.__setitem__(
                i, out[0] if isinstance(out, tuple) else out
            )
        )
        for i, layer in enumerate(reference.model.layers)
    ]
    try:
        with torch.no_grad():
            hs = reference(
                input_ids=batch.ids, attention_mask=batch.attention_mask, output_hidden_states=True
            ).hidden_states
    finally:
        for h in handles:
            h.remove()
    mask = batch.attention_mask.bool()
    for layer in range(model.n_layers):
        ours = store.tensor(hook_name(layer))
        assert torch.allclose(ours[mask], outputs[layer][mask], atol=1e-5, rtol=0), layer
        if layer < model.n_layers - 1:  # transformers' last hidden state is after the final norm
            assert torch.allclose(ours[mask], hs[layer + 1][mask], atol=1e-5, rtol=0), layer


def test_tokenize_right_pads_and_applies_bos_policy(tiny):
    model, _, _ = tiny
    batch = model.tokenize(TEXTS)
    tok = model.tokenizer
    for i, text in enumerate(TEXTS):
        expected = tok.encode(text, add_special_tokens=False)
        if model.prepend_bos:
            expected = [tok.bos_token_id, *expected]
        n = len(expected)
        assert batch.ids[i, :n].tolist() == expected
        assert batch.attention_mask[i].tolist() == [1] * n + [0] * (batch.ids.shape[1] - n)
        assert int(batch.lengths[i]) == n


def test_model_facts(tiny):
    model, reference, _ = tiny
    assert model.n_layers == reference.config.num_hidden_layers
    assert model.d_model == reference.config.hidden_size
    assert model.d_vocab == reference.config.vocab_size
    assert model.convention.space_marker == "Ġ"
    assert model.provenance.source == "object"
    assert model.provenance.versions["transformers"]
    from importlib.metadata import version

    assert model.provenance.versions["transformer_lens"] == version("transformer-lens")


def test_word_token_ids_leading_space(tiny):
    model, _, _ = tiny
    tok = model.tokenizer
    assert model.word_token_ids("cat") == tok.encode(" cat", add_special_tokens=False)
    assert model.word_token_ids("cat", leading_space=False) == tok.encode(
        "cat", add_special_tokens=False
    )
    with pytest.raises(ValueError, match="without surrounding whitespace"):
        model.word_token_ids(" cat")


def test_prepend_bos_false_is_honoured():
    from tests.conftest import build_tiny

    hf, _, tok = build_tiny("llama")
    model = hublens.load_model(hf, tok, prepend_bos=False)
    assert model.tokenize("cat").ids[0, 0].item() != tok.bos_token_id
    assert model.bridge.cfg.default_prepend_bos is False


def test_tokenize_rejects_empty(tiny):
    model, _, _ = tiny
    with pytest.raises(ValueError, match="texts"):
        model.tokenize([])
    with pytest.raises(ValueError, match=r"texts\[1\]"):
        model.tokenize(["a", ""])
