"""Arithmetic trajectories against numpy's PCA and hand-computed distances."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hublens.views.trajectories import WORDS, arithmetic_trajectories, pca_2d, trajectory_figure


def _hf_states(model, reference, prompts):
    """(layer, prompt, d) last-token states read as the normed lens reads them, via HF."""
    out = []
    n = model.n_layers
    for prompt in prompts:
        batch = model.tokenize(prompt)
        with torch.no_grad():
            hs = reference(input_ids=batch.ids, output_hidden_states=True).hidden_states
            rows = [
                hs[layer + 1][0, -1]
                if layer == n - 1
                else reference.model.norm(hs[layer + 1][0, -1])
                for layer in range(n)
            ]
        out.append(torch.stack(rows).float().numpy())
    return np.stack(out, 1).astype(np.float64)


def test_pca_and_distances_match_independent_computation(tiny):
    model, reference, _ = tiny
    result = arithmetic_trajectories(model, max_items=6, seed=1, batch_size=4)
    assert len(result.prompts) == 6 and all(p.endswith("+") for p in result.prompts)
    h = _hf_states(model, reference, result.prompts)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    tok = model.tokenizer
    w = reference.lm_head.weight.detach().double().numpy()
    num_ids = [tok.encode(str(d), add_special_tokens=False)[0] for d in range(10)]
    word_ids = [tok.encode(" " + x, add_special_tokens=False)[0] for x in WORDS]
    assert result.numeral_ids == num_ids and result.word_ids == word_ids
    a = np.asarray(result.answers)
    want_num = 1 - (unit(h) * unit(w[num_ids])[a]).sum(-1)
    want_word = 1 - (unit(h) * unit(w[word_ids])[a]).sum(-1)
    np.testing.assert_allclose(result.numeral_distance, want_num, atol=1e-5)
    np.testing.assert_allclose(result.word_distance, want_word, atol=1e-5)
    # numpy's PCA by eigen-decomposition of the covariance, sign-aligned per component
    pooled = np.concatenate([unit(h).reshape(-1, h.shape[-1]), unit(w[num_ids]), unit(w[word_ids])])
    centred = pooled - pooled.mean(0)
    vals, vecs = np.linalg.eigh(np.cov(centred, rowvar=False))
    top = vecs[:, ::-1][:, :2]
    expected = centred @ top
    got = np.concatenate([result.coords.reshape(-1, 2), result.numeral_coords, result.word_coords])
    signs = np.sign((expected * got).sum(0))
    np.testing.assert_allclose(got, expected * signs, atol=1e-4)
    assert result.explained[0] == pytest.approx(vals[::-1][0] / vals.sum(), abs=1e-6)
    rows = result.rows()
    frac = [r for r in rows if r.metric == "frac_word_closer" and r.layer == 0][0]
    assert frac.mean == pytest.approx(float((want_word[0] < want_num[0]).mean()))
    assert frac.n == 6
    assert len(trajectory_figure(result).data) == len(set(result.answers)) + 2


def test_pca_2d_signs_and_bad_inputs(tiny_llama):
    x = np.random.default_rng(0).normal(size=(20, 5))
    _, comps, coords, _ = pca_2d(x)
    assert np.allclose(np.abs(comps).max(1), comps[np.arange(2), np.abs(comps).argmax(1)])
    np.testing.assert_allclose(coords, (x - x.mean(0)) @ comps.T)
    model, _ = tiny_llama
    with pytest.raises(ValueError, match="max_items="):
        arithmetic_trajectories(model, max_items=1)
