"""TunedLens readouts against independent computations (plain transformers, numpy by hand)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hublens.hooks.readout import Unembed
from hublens.lenses.artifact import ModelFingerprint
from hublens.lenses.tuned import TunedLens
from tests.helpers.lens_reference import hidden_states, token_ids

TEXT = "Le chat dort sur le tapis chaud."


def random_lens(model, seed=0, scale=0.05):
    g = torch.Generator().manual_seed(seed)
    n, d = model.n_layers, model.d_model
    weight = torch.randn(n - 1, d, d, generator=g) * scale
    bias = torch.randn(n - 1, d, generator=g) * scale
    return TunedLens(
        Unembed.from_model(model), weight, bias, fingerprint=ModelFingerprint.from_model(model)
    )


def test_last_layer_reads_the_models_own_logprobs(tiny):
    model, reference, _ = tiny
    ids = torch.tensor([token_ids(model, TEXT)])
    h = hidden_states(reference, ids)  # (layer, pos, d), plain HF
    with torch.no_grad():
        own = torch.log_softmax(reference(input_ids=ids).logits[0].float(), -1)
    lens = random_lens(model)
    last = model.n_layers - 1
    rows = h[last]
    assert lens.transform(rows, last) is rows  # the identity there, asserted
    got = lens.logprobs(rows, layer=last)
    torch.testing.assert_close(got, own, atol=1e-5, rtol=1e-5)
    # the identity lens is the logit lens with the final norm at every layer
    ident = TunedLens.identity(model)
    from hublens.hooks.lens import LogitLens

    logit = LogitLens.from_model(model, final_norm=True)
    layers = list(range(model.n_layers))
    torch.testing.assert_close(ident.logprobs(h, layer=layers), logit.logprobs(h, layer=layers))


def _rms_norm(x, weight, eps, gemma):
    scale = (1.0 + weight) if gemma else weight
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + eps) * scale


def test_known_translator_equals_hand_computation(tiny):
    model, reference, kind = tiny
    ids = torch.tensor([token_ids(model, TEXT)])
    h = hidden_states(reference, ids).double().numpy()
    lens = random_lens(model, seed=1)
    A = lens.translator_weight.double().numpy()
    b = lens.translator_bias.double().numpy()
    norm = reference.model.norm
    w = norm.weight.detach().double().numpy()
    eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
    W_U = reference.lm_head.weight.detach().double().numpy()
    for layer in range(model.n_layers - 1):
        x = h[layer] + h[layer] @ A[layer].T + b[layer]
        logits = _rms_norm(x, w, eps, kind == "gemma3") @ W_U.T
        expected = (
            logits
            - np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1))[:, None]
            - logits.max(-1, keepdims=True)
        )
        got = lens.logprobs(torch.from_numpy(h[layer]).float(), layer=layer).double().numpy()
        np.testing.assert_allclose(got, expected, atol=2e-4, rtol=1e-4)
        # the translator matters: the logit lens reads something else
        assert (
            np.abs(
                got
                - lens.logprobs(
                    torch.from_numpy(h[layer]).float(), layer=model.n_layers - 1
                ).numpy()
            ).max()
            > 1e-3
        )


def test_readout_needs_layer(tiny):
    model, _, _ = tiny
    lens = random_lens(model)
    with pytest.raises(ValueError, match="layer="):
        lens.readout(torch.zeros(2, model.d_model), [1])


def test_bad_shapes_refused(tiny):
    model, _, _ = tiny
    with pytest.raises(ValueError, match="needs weight"):
        TunedLens(
            Unembed.from_model(model),
            torch.zeros(model.n_layers, model.d_model, model.d_model),
            torch.zeros(model.n_layers, model.d_model),
            fingerprint=ModelFingerprint.from_model(model),
        )
