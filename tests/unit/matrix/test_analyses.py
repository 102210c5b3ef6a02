"""Matrix: the similarity and language-probability analyses equal plain transformers per family.

The reference side reads plain HF only: every decoder layer's output by a forward hook, the
final norm and head applied by hand at the last layer (the model's output) and for the lens,
numpy cosines; one text at a time, so padding plays no part there.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hublens import semantic_hub_scan
from hublens.analyses.language import LanguageProbability, language_given_token
from hublens.analyses.similarity import Similarity
from hublens.data import ParallelData
from tests.unit.matrix.families import layer_states, lens_logprobs, parts, text_ids

RECORDS = [
    {"en": "The cat sleeps on the warm mat.", "fr": "Le chat dort.", "zh": "猫在睡觉"},
    {"en": "three plus two", "fr": "trois plus deux", "zh": "三加二"},
    {"en": "flower", "fr": "fleur", "zh": "花"},
]
LANGUAGES = ("en", "fr", "zh")


def _last_token_states(reference, tokenizer, texts) -> np.ndarray:
    """(layer, item, d) last-token states; the last layer through the HF final norm by hand."""
    _, norm = parts(reference)
    out = []
    for text in texts:
        h = layer_states(reference, text_ids(tokenizer, text))[:, -1]
        with torch.no_grad():
            h[-1] = norm(h[-1])
        out.append(h.double().numpy())
    return np.stack(out, axis=1)


def _adjusted(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Eq. 1 per layer and item: cos(x_i, y_i) - mean_{j != i} cos(x_i, y_j) (numpy)."""
    xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=-1, keepdims=True)
    cos = np.einsum("lid,ljd->lij", xn, yn)
    n = cos.shape[-1]
    diag = np.diagonal(cos, axis1=-2, axis2=-1)
    return diag - (cos.sum(-1) - diag) / (n - 1)


def test_similarity_equals_plain_transformers(family):
    _, model, reference, _ = family
    data = ParallelData.from_records(RECORDS, name="matrix")
    result = semantic_hub_scan(
        model, data, analyses=[Similarity(cues={})], batch_size=3, progress=False
    )
    x = _last_token_states(reference, model.tokenizer, data.column("en"))
    for other in ("fr", "zh"):
        expected = _adjusted(x, _last_token_states(reference, model.tokenizer, data.column(other)))
        rows = {
            r.layer: r
            for r in result.select("similarity", group=f"en-{other}")
            if r.metric == "adjusted_cosine"
        }
        assert sorted(rows) == list(range(model.n_layers))
        for layer, row in rows.items():
            assert row.n == len(RECORDS)
            assert abs(row.mean - expected[layer].mean()) < 1e-4, (other, layer)


def test_language_probability_equals_plain_transformers(family):
    _, model, reference, _ = family
    generator = torch.Generator().manual_seed(0)
    raw = torch.rand(model.d_vocab, len(LANGUAGES), generator=generator, dtype=torch.float64)
    raw[torch.rand(model.d_vocab, generator=generator) < 0.3] = 0  # words of no language
    matrix = language_given_token(raw)
    data = ParallelData.from_records(RECORDS, name="matrix")
    analysis = LanguageProbability(languages=LANGUAGES, token_language=matrix)
    result = semantic_hub_scan(model, data, analyses=[analysis], batch_size=3, progress=False)
    rows = {(r.metric, r.group, r.layer): r for r in result.rows}
    names = [*(f"p_{lang}" for lang in LANGUAGES), "lang_entropy", "p_word"]
    for group in ("en", "zh"):
        per_text = []
        for record in RECORDS:
            h = layer_states(reference, text_ids(model.tokenizer, record[group]))[:, 1:]  # no BOS
            q = lens_logprobs(reference, h).exp().double() @ matrix.double()  # (layer, pos, K)
            mass = q.sum(-1, keepdim=True)
            normed = q / mass
            entropy = -(normed * normed.log()).sum(-1) / math.log(len(LANGUAGES))
            per_text.append(torch.cat([normed, entropy[..., None], mass], -1).mean(1))
        expected = torch.stack(per_text).mean(0)  # (layer, K + 2), mean over texts
        for layer in range(model.n_layers):
            for m, metric in enumerate(names):
                row = rows[(metric, group, layer)]
                assert row.n == len(RECORDS)
                assert abs(row.mean - float(expected[layer, m])) < 1e-4, (group, layer, metric)
