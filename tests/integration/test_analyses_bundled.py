"""Every scan analysis on the real bundled models against plain transformers on the same GGUF."""

from __future__ import annotations

import pytest
import torch

from hublens import semantic_hub_scan
from hublens.analyses import ArithmeticProbe, LanguageProbability, Similarity, TranslationLens
from hublens.data import ParallelData
from hublens.hooks import attached_hooks
from tests.helpers.lens_reference import (
    first_id,
    hidden_states,
    last_token_logprobs,
    lens_logprobs,
    rows_by_key,
    token_ids,
)
from tests.helpers.tolerance import reference_lens_atol

pytestmark = pytest.mark.integration

WORDS = [
    {"en": "flower", "zh": "花", "fr": "fleur"},
    {"en": "dog", "zh": "狗", "fr": "chien"},
    {"en": "water", "zh": "水", "fr": "eau"},
    {"en": "book", "zh": "书", "fr": "livre"},
]



def test_similarity_and_lens_probes_equal_plain_transformers(bundled):
    model, reference, name = bundled
    data = ParallelData.from_records(WORDS, name="w")
    layers = [2, model.n_layers // 2, model.n_layers - 1]
    result = semantic_hub_scan(
        model, data, layers=layers, batch_size=3, progress=False,
        analyses=[
            Similarity(pairs=[("en", "zh")], cues={}),
            TranslationLens(source="fr", target="zh", dominant="en", few_shot=1),
        ],
    )
    # Similarity (Eq. 1) from output_hidden_states, all in memory.
    x = torch.stack([hidden_states(reference, torch.tensor([token_ids(model, w["en"])]))[:, -1]
                     for w in WORDS], 1)
    y = torch.stack([hidden_states(reference, torch.tensor([token_ids(model, w["zh"])]))[:, -1]
                     for w in WORDS], 1)
    with torch.no_grad():  # the last layer is the model's output state (normed), as the paper reads
        x[-1], y[-1] = reference.model.norm(x[-1]), reference.model.norm(y[-1])
    xn, yn = x / x.norm(dim=-1, keepdim=True), y / y.norm(dim=-1, keepdim=True)
    cos = torch.einsum("lid,ljd->lij", xn.double(), yn.double())
    n = len(WORDS)
    diag = cos.diagonal(dim1=-2, dim2=-1)
    adjusted = (diag - (cos.sum(-1) - diag) / (n - 1)).mean(-1)
    sim = rows_by_key(result, "similarity")
    for layer in layers:
        assert abs(sim[("adjusted_cosine", "en-zh", layer)].mean - float(adjusted[layer])) < 1e-4
    # Translation lens: hand-built prompts, first tokens without a leading space.
    tok = model.tokenizer
    tgt, dom, atol = [], [], 0.0
    for i, w in enumerate(WORDS):
        demo = WORDS[(i + 1) % n]
        prompt = (f'Français: "{demo["fr"]}" - 中文: "{demo["zh"]}"\n'
                  f'Français: "{w["fr"]}" - 中文: "')
        lp = last_token_logprobs(reference, model, prompt)
        h = hidden_states(reference, torch.tensor([token_ids(model, prompt)]))[:, -1]
        atol = max(atol, reference_lens_atol(reference, h))  # derived: tests/helpers/tolerance.py
        tgt.append(lp[:, first_id(tok, w["zh"])])
        dom.append(lp[:, first_id(tok, w["en"])])
    t, d = torch.stack(tgt).double().mean(0), torch.stack(dom).double().mean(0)
    lens = rows_by_key(result, "translation_lens")
    for layer in layers:
        assert abs(lens[("logp_target", "fr->zh", layer)].mean - float(t[layer])) < atol
        assert abs(lens[("logp_dominant", "fr->zh", layer)].mean - float(d[layer])) < atol
    assert attached_hooks(model) == []


def test_arithmetic_probe_and_language_probability_equal_plain_transformers(bundled):
    model, reference, name = bundled
    data = ParallelData.load("arithmetic").select([0, 5, 98, 100])
    layers = [model.n_layers // 2, model.n_layers - 1]
    matrix = torch.zeros(model.d_vocab, 2)
    tok = model.tokenizer
    # A hand-made p(lang | v): numerals are "lang a", English number words "lang b".
    for word in ("1", "2", "3", "4", "5", "6", "7", "8", "9"):
        matrix[first_id(tok, word), 0] = 1
    for word in (" one", " two", " three", " four", " five", " six", " seven", " eight", " nine"):
        matrix[first_id(tok, word), 1] = 1
    result = semantic_hub_scan(
        model, data, layers=layers, batch_size=2, progress=False,
        analyses=[ArithmeticProbe(),
                  LanguageProbability(languages=("a", "b"), token_language=matrix,
                                      types=("numeral",))],
    )
    words = {1: " one", 2: " two", 3: " three", 4: " four", 5: " five", 6: " six", 7: " seven",
             8: " eight", 9: " nine"}
    num, wrd, lang, atol = [], [], [], 0.0
    for meta, item in zip(data.meta, data.items, strict=True):
        lp = last_token_logprobs(reference, model, meta["lens_prompt"])
        h_last = hidden_states(reference, torch.tensor([token_ids(model, meta["lens_prompt"])]))
        atol = max(atol, reference_lens_atol(reference, h_last[:, -1]))
        num.append(lp[:, first_id(tok, str(meta["lens_answer"]))])
        wrd.append(lp[:, first_id(tok, words[meta["lens_answer"]])])
        ids = token_ids(model, item["numeral"])
        h = hidden_states(reference, torch.tensor([ids]))[:, 1 if model.prepend_bos else 0 :]
        atol = max(atol, reference_lens_atol(reference, h))
        q = lens_logprobs(reference, h).exp() @ matrix
        normed = q / q.sum(-1, keepdim=True).clamp_min(1e-30)
        lang.append(normed.mean(1))
    num_m, wrd_m = torch.stack(num).double().mean(0), torch.stack(wrd).double().mean(0)
    lang_m = torch.stack(lang).double().mean(0)
    rows = rows_by_key(result, "arithmetic_lens")
    lp_rows = rows_by_key(result, "language_probability")
    for layer in layers:
        # Derived bound on fp32 lens log-probs (tests/helpers/tolerance.py); a probability moves
        # by at most as much as its log (|dp| <= p |d log p| <= |d log p|), a renormalised share
        # by at most twice that.
        assert abs(rows[("logp_numeral", "all", layer)].mean - float(num_m[layer])) < atol
        assert abs(rows[("logp_word", "all", layer)].mean - float(wrd_m[layer])) < atol
        assert abs(lp_rows[("p_a", "numeral", layer)].mean - float(lang_m[layer, 0])) < 2 * atol
    groups = {r.group for r in result.rows if r.analysis == "arithmetic_lens"}
    assert groups == {"all", "add", "mul"}


def test_gemma_translation_lens_passes_through_english(gemma):
    """PAPER.md: on FR->ZH prompts English leads at some middle layer, Chinese at the end."""
    data = ParallelData.load("multilingual-words").select(range(30))
    result = semantic_hub_scan(
        gemma, data, analyses=[TranslationLens(source="fr", target="zh")], progress=False
    )
    rows = rows_by_key(result, "translation_lens")
    last = gemma.n_layers - 1
    middle = range(gemma.n_layers // 2, last - 1)
    assert any(
        rows[("p_dominant", "fr->zh", layer)].mean > rows[("p_target", "fr->zh", layer)].mean
        for layer in middle
    )
    assert rows[("p_target", "fr->zh", last)].mean > 10 * rows[("p_dominant", "fr->zh", last)].mean
    target = rows[("logp_target", "fr->zh", last)]
    dominant = rows[("logp_dominant", "fr->zh", last)]
    assert target.ci_low > dominant.ci_high
