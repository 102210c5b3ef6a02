"""The last-layer rule in every lens analysis: under final_norm False AND True, the last layer
reads the model's own next-token log-probs (plain transformers' logits, no lens code)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hublens
from hublens import semantic_hub_scan
from hublens.analyses import (
    ArithmeticProbe,
    ChineseRunningText,
    LanguageProbability,
    TranslationLens,
)
from hublens.data import ParallelData
from tests.conftest import build_tiny
from tests.helpers.lens_reference import rows_by_key, token_ids
from tests.unit.analyses.test_method_presets import DICTIONARY, EXTRA, WORDS, ZH_TEXTS

ATOL = 1e-4


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def tiny(request):
    hf, reference, tok = build_tiny(request.param, extra_corpus=EXTRA)
    return hublens.load_model(hf, tok), reference, tok


def _output_logprobs(reference, ids: list[int]) -> torch.Tensor:
    """(pos, vocab) the model's own log-probs."""
    with torch.no_grad():
        return torch.log_softmax(reference(torch.tensor([ids])).logits[0].float(), -1)


def _last(result, analysis: str, metric: str, group: str, n_layers: int) -> float:
    return rows_by_key(result, analysis)[(metric, group, n_layers - 1)].mean


@pytest.mark.parametrize("final_norm", [False, True])
def test_lens_probe_last_layer_is_the_model_output(tiny, final_norm):
    model, reference, tok = tiny
    items = [("+", 3, 2, 5), ("*", 2, 3, 6), ("+", 4, 3, 7)]
    records = [
        {"numeral": f"{o}{op}{t}", "words": "x", "meta": {"lens_prompt": f"{r}={o}{op}",
                                                         "lens_answer": t, "op": op}}
        for op, o, t, r in items
    ]  # fmt: skip
    data = ParallelData.from_records(records, name="a3")
    probe = ArithmeticProbe(final_norm=final_norm)
    result = semantic_hub_scan(model, data, analyses=[probe], progress=False)
    expected = [
        _output_logprobs(reference, token_ids(model, f"{r}={o}{op}"))[-1][
            tok.encode(str(t), add_special_tokens=False)[0]
        ].item()
        for op, o, t, r in items
    ]
    got = _last(result, "arithmetic_lens", "logp_numeral", "all", model.n_layers)
    assert got == pytest.approx(np.mean(expected), abs=ATOL)
    assert result.options["arithmetic_lens"]["last_layer"] == "output"


@pytest.mark.parametrize("final_norm", [False, True])
def test_translation_last_layer_is_the_model_output(tiny, final_norm):
    model, reference, tok = tiny
    data = ParallelData.from_records([{"en": e, "fr": f, "zh": z} for e, f, z in WORDS], name="w")
    lens = TranslationLens(source="fr", target="zh", dominant="en", final_norm=final_norm)
    result = semantic_hub_scan(model, data, analyses=[lens], progress=False)
    prompts = result.examples["translation_lens"]
    assert prompts  # the lens read at least these; compare the mean over every query
    n_q = result.options["translation_lens"]["n_queries"]
    assert n_q == len(WORDS)  # first tokens of these words never collide here
    values = []
    for i, (_, fr, zh) in enumerate(WORDS):
        demos = [WORDS[(i + s) % len(WORDS)] for s in (1, 2)]
        text = "\n".join([*(f'Français: "{d[1]}" - 中文: "{d[2]}"' for d in demos),
                          f'Français: "{fr}" - 中文: "'])  # fmt: skip
        lp = _output_logprobs(reference, token_ids(model, text))[-1]
        values.append(lp[model.word_token_ids(zh, leading_space=False)[0]].item())
    got = _last(result, "translation_lens", "logp_target", "fr->zh", model.n_layers)
    assert got == pytest.approx(np.mean(values), abs=ATOL)


@pytest.mark.parametrize("final_norm", [False, True])
def test_language_probability_last_layer_is_the_model_output(tiny, final_norm):
    model, reference, tok = tiny
    texts = ["The cat sleeps on the warm mat.", "A dog and a cat."]
    data = ParallelData.from_records([{"en": t, "zh": "猫"} for t in texts], name="lp")
    table = torch.rand(model.d_vocab, 2)
    table = table / table.sum(-1, keepdim=True)
    analysis = LanguageProbability(
        languages=("en", "zh"), token_language=table, types=["en"], final_norm=final_norm,
        aggregation="per-token", include_bos=True,
    )  # fmt: skip
    result = semantic_hub_scan(model, data, analyses=[analysis], progress=False)
    rows = [_output_logprobs(reference, token_ids(model, t)).exp() @ table for t in texts]
    expected = torch.cat(rows).mean(0)
    got = _last(result, "language_probability", "p_en", "en", model.n_layers)
    assert got == pytest.approx(expected[0].item(), abs=ATOL)


@pytest.mark.parametrize("final_norm", [False, True])
def test_running_text_last_layer_is_the_model_output(tiny, final_norm):
    model, reference, tok = tiny
    data = ParallelData.from_records([{"zh": t, "en": "x"} for t in ZH_TEXTS], name="zh")
    analysis = ChineseRunningText(
        method="semantic-hub", dictionary=DICTIONARY, final_norm=final_norm
    )
    result = semantic_hub_scan(model, data, analyses=[analysis], progress=False)
    from hublens.analyses.running_text_paper import single_token_words

    values = []
    for text in ZH_TEXTS:
        words = single_token_words(model, text, DICTIONARY) or []
        lp = _output_logprobs(reference, tok.encode(text, add_special_tokens=False))
        values += [lp[prev, zh].item() for _, prev, zh, _, _ in words]
    assert values
    got = _last(result, "chinese_running_text", "logp_zh", "", model.n_layers)
    assert got == pytest.approx(np.mean(values), abs=ATOL)
