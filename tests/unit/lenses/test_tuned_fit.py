"""Fitting the tuned lens on a tiny random model: it beats the logit lens, deterministically."""

from __future__ import annotations

import random

import pytest
import torch

from hublens.hooks.lens import LogitLens
from hublens.lenses import fit_tuned
from hublens.lenses.fit_tuned import TunedFitSettings, fit_tuned_lens
from tests.helpers.lens_reference import hidden_states, lens_logprobs, token_ids

WORDS = (
    "the cat dog sleeps on mat warm le chat dort sur tapis chaud 猫 在 温暖 three plus two".split()
)
_rng = random.Random(0)
TEXTS = [" ".join(_rng.choice(WORDS) for _ in range(16)) for _ in range(24)]
SETTINGS = TunedFitSettings(steps=40, batch_rows=32, lr=1e-2, held_out=0.25, checkpoint_every=10)


@pytest.fixture(scope="module")
def fitted(tiny_llama):
    model, _ = tiny_llama
    return fit_tuned_lens(model, TEXTS, SETTINGS, progress=False)


def _independent_kl(model, reference, lens, texts):
    """Held-out KL per layer recomputed with plain HF hidden states and a hand translator."""
    n = model.n_layers
    tuned, logit, rows = torch.zeros(n), torch.zeros(n), 0
    for text in texts:
        h = hidden_states(reference, torch.tensor([token_ids(model, text)]))[:, 1:]
        final = lens_logprobs(reference, h[-1])
        for layer in range(n):
            x = h[layer]
            if layer < n - 1:
                x = x + x @ lens.translator_weight[layer].T + lens.translator_bias[layer]
            for out, rows_ in ((tuned, x), (logit, h[layer])):
                q = lens_logprobs(reference, rows_)
                out[layer] += float((final.exp() * (final - q)).sum())
        rows += h.shape[1]
    return tuned / rows, logit / rows


def test_tuned_beats_logit_lens_on_held_out_text(tiny_llama, fitted):
    model, reference = tiny_llama
    lens, record = fitted
    held = record["held_out"]
    n = model.n_layers
    for layer in range(n - 1):
        assert held["tuned"][layer] < held["logit"][layer], layer
    assert held["tuned"][n - 1] == pytest.approx(0.0, abs=1e-6)
    # the reported numbers agree with an independent recomputation on the held-out texts
    train, held_rows = fit_tuned.split_rows(
        fit_tuned.capture(model, TEXTS, max_tokens=SETTINGS.max_tokens, top_k=1),
        SETTINGS.held_out,
        SETTINGS.seed,
    )
    owners = fit_tuned.capture(model, TEXTS, max_tokens=128, top_k=1).text_of_row
    held_texts = [TEXTS[int(i)] for i in torch.unique(owners[held_rows])]
    tuned, logit = _independent_kl(model, reference, lens, held_texts)
    torch.testing.assert_close(tuned, torch.tensor(held["tuned"]), atol=1e-4, rtol=1e-3)
    torch.testing.assert_close(logit, torch.tensor(held["logit"]), atol=1e-4, rtol=1e-3)
    # the lens really reads through the translators (not the logit lens)
    logit_lens = LogitLens.from_model(model)
    h = torch.randn(3, model.d_model)
    assert not torch.allclose(lens.logprobs(h, layer=0), logit_lens.logprobs(h, layer=0))


def test_fit_is_bitwise_deterministic(tiny_llama, fitted):
    model, _ = tiny_llama
    again, record = fit_tuned_lens(model, TEXTS, SETTINGS, progress=False)
    assert torch.equal(again.translator_weight, fitted[0].translator_weight)
    assert torch.equal(again.translator_bias, fitted[0].translator_bias)
    assert record["held_out"] == fitted[1]["held_out"]
    other, _ = fit_tuned_lens(
        model, TEXTS, TunedFitSettings(**{**SETTINGS.__dict__, "seed": 1}), progress=False
    )
    assert not torch.equal(other.translator_weight, fitted[0].translator_weight)


def test_resumed_fit_equals_uninterrupted_fit(tiny_llama, fitted, tmp_path):
    model, _ = tiny_llama
    out = tmp_path / "lens"
    fit_tuned_lens(model, TEXTS, SETTINGS, checkpoint=out, stop_after=20, progress=False)
    assert (tmp_path / ".lens.checkpoint.safetensors").is_file()
    resumed, record = fit_tuned_lens(model, TEXTS, SETTINGS, checkpoint=out, progress=False)
    assert record["resumed_from_step"] == 20
    assert torch.equal(resumed.translator_weight, fitted[0].translator_weight)
    fit_tuned.remove_checkpoint(out)
    assert not (tmp_path / ".lens.checkpoint.safetensors").exists()


def test_subset_vocabulary_also_beats_logit_lens(tiny_llama):
    model, _ = tiny_llama
    settings = TunedFitSettings(
        **{**SETTINGS.__dict__, "vocabulary": "subset", "top_k": 8, "n_tail": 64}
    )
    _, record = fit_tuned_lens(model, TEXTS, settings, progress=False)
    held = record["held_out"]
    assert all(t < lo for t, lo in zip(held["tuned"][:-1], held["logit"][:-1], strict=True))
    assert "subset" in record["training_vocabulary"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"steps": 0}, "steps"),
        ({"held_out": 1.0}, "held_out"),
        ({"vocabulary": "some"}, "vocabulary"),
        ({"batch_rows": True}, "batch_rows"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TunedFitSettings(**kwargs)
