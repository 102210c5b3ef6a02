"""method= presets against the independent transcriptions in tests/reference, at EVERY layer.

Each test runs hublens (``semantic_hub_scan`` with one preset) and the transcription of the
source on the plain transformers model, on small data written here, and compares the per-layer
numbers the source prints, the last layer included, within 1e-4.
"""

from __future__ import annotations

import numpy as np
import pytest

import hublens
from hublens import semantic_hub_scan
from hublens.analyses import (
    ArithmeticProbe,
    ChineseRunningText,
    LanguageProbability,
    TranslationLens,
)
from hublens.analyses.running_text_paper import first_gloss_dictionary
from hublens.data import ParallelData
from hublens.hooks import attached_hooks
from tests.conftest import build_tiny
from tests.helpers.lens_reference import rows_by_key
from tests.reference import semantic_hub as sh
from tests.reference import semantic_hub_running_text as rt
from tests.reference import wendler as wd

WORDS = [  # (en, fr, zh)
    ("flower", "fleur", "花"),
    ("cat", "chat", "猫"),
    ("dog", "chien", "狗"),
    ("water", "eau", "水"),
    ("house", "maison", "房子"),
    ("tree", "arbre", "树"),
    ("book", "livre", "书"),
    ("sun", "soleil", "太阳"),
]
ZH_TEXTS = ["我们喜欢猫。", "狗和猫在睡觉。", "温暖的花。", "猫喜欢花和狗。"]
EXTRA = (
    " ".join(w for row in WORDS for w in row),
    " cat dog flower warm sun",
    *ZH_TEXTS,
    "我们 喜欢 猫 狗 花 温暖 睡觉",
)
ATOL = 1e-4


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def tiny(request):
    """(HubModel, plain HF model, tokenizer) with the words above in the vocabulary."""
    hf, reference, tok = build_tiny(request.param, extra_corpus=EXTRA)
    model = hublens.load_model(hf, tok)
    assert model.prepend_bos == (tok("a").input_ids[0] == tok.bos_token_id)  # = tokenizer default
    yield model, reference, tok
    assert attached_hooks(model) == []


def _per_layer(result, analysis: str, metric: str, group: str, n_layers: int) -> np.ndarray:
    rows = rows_by_key(result, analysis)
    return np.array([rows[(metric, group, layer)].mean for layer in range(n_layers)])


def _words_data() -> ParallelData:
    return ParallelData.from_records(
        [{"en": en, "fr": fr, "zh": zh} for en, fr, zh in WORDS], name="words8"
    )


def _wendler_rows():
    return [wd.Row(en=en, src=fr, tgt=zh) for en, fr, zh in WORDS]


@pytest.mark.parametrize("method", ["wendler", "semantic-hub"])
def test_translation_preset_equals_wendler_transcription(tiny, method):
    model, reference, tok = tiny
    lens = TranslationLens(method=method, source="fr", target="zh", dominant="en")
    result = semantic_hub_scan(model, _words_data(), analyses=[lens], progress=False)
    dataset = wd.build_dataset(_wendler_rows(), tok, input_lang="fr", target_lang="zh")
    assert dataset, "the transcription keeps no row: the test data is too small"
    opts = result.options["translation_lens"]
    assert opts["n_queries"] == len(dataset) and opts["few_shot"] == 4
    assert opts["method"] == method and opts["last_layer"] == "output"
    if method == "wendler":
        ref = wd.translation_lens(reference, tok, dataset)
        latent, out = ref["latent_mean"], ref["out_mean"]
    else:  # Wendler's data through the paper's lens (no norm; the last layer is the output)
        probs = [np.exp(sh.hidden_logprobs(reference, tok, d["prompt"])[:, -1]) for d in dataset]
        latent = np.mean(
            [p[:, d["latent_token_id"]].sum(-1) for p, d in zip(probs, dataset, strict=True)], 0
        )
        out = np.mean(
            [p[:, d["out_token_id"]].sum(-1) for p, d in zip(probs, dataset, strict=True)], 0
        )
    n = model.n_layers
    np.testing.assert_allclose(_per_layer(result, "translation_lens", "p_dominant", "fr->zh", n),
                               latent, atol=ATOL)  # fmt: skip
    np.testing.assert_allclose(_per_layer(result, "translation_lens", "p_target", "fr->zh", n),
                               out, atol=ATOL)  # fmt: skip


def _arithmetic_data(items) -> ParallelData:
    records = []
    for op, o, t, r in items:
        meta = {"lens_prompt": f"{r}={o}{op}", "lens_answer": t, "op": op}
        records.append({"numeral": f"{o}{op}{t}", "words": f"{o} {op} {t}", "meta": meta})
    return ParallelData.from_records(records, name="arith4")


@pytest.mark.parametrize("method", ["semantic-hub", "wendler"])
def test_arithmetic_preset_equals_paper_transcription(tiny, method):
    model, reference, tok = tiny
    items = [("+", 3, 2, 5), ("+", 4, 3, 7), ("*", 2, 3, 6), ("+", 1, 1, 2), ("*", 4, 2, 8)]
    result = semantic_hub_scan(
        model, _arithmetic_data(items), analyses=[ArithmeticProbe(method=method)], progress=False
    )
    assert result.options["arithmetic_lens"]["final_norm"] is (method == "wendler")
    ref = sh.arithmetic_lens(
        reference, tok, items, lens=wd.normed_logprobs if method == "wendler" else None
    )
    n = model.n_layers
    for metric, key in (("logp_numeral", "numeral_mean"), ("logp_word", "word_mean")):
        got = _per_layer(result, "arithmetic_lens", metric, "all", n)
        np.testing.assert_allclose(got, ref[key], atol=ATOL, err_msg=metric)


CORPUS = {
    "en": ["The cat sleeps on the warm mat.", "A dog and a cat.", "flower sun tree book"],
    "zh": ["猫在温暖的垫子上睡觉。", "我们喜欢猫和狗。", "花"],
}


@pytest.mark.parametrize("method", ["semantic-hub", "wendler"])
def test_language_probability_preset_equals_paper_transcription(tiny, method):
    model, reference, tok = tiny
    data = ParallelData.from_records(
        [{"en": e, "zh": z} for e, z in zip(CORPUS["en"], CORPUS["zh"], strict=True)], name="lp3"
    )
    analysis = LanguageProbability(
        method=method, languages=("en", "zh"), count_corpus=CORPUS, types=["en", "zh"]
    )
    result = semantic_hub_scan(model, data, analyses=[analysis], progress=False)
    table = sh.language_given_token(sh.token_counts_from_texts(tok, CORPUS, ["en", "zh"]))
    lens = wd.normed_logprobs if method == "wendler" else None
    n = model.n_layers
    for group in ("en", "zh"):
        ref = sh.language_probabilities(reference, tok, CORPUS[group], table, lens=lens)
        for k, lang in enumerate(("en", "zh")):
            got = _per_layer(result, "language_probability", f"p_{lang}", group, n)
            np.testing.assert_allclose(got, ref[:, k], atol=ATOL, err_msg=(group, lang))
    opts = result.options["language_probability"]
    assert opts["aggregation"] == "per-token" and opts["include_bos"] is True
    assert opts["no_language"] == "uniform" and opts["token_table"] == "token-counts"


DICTIONARY = {
    "猫": ["cat"],
    "狗": ["dog"],
    "花": ["flower", "blossom"],
    "睡觉": ["to go to bed"],
    "温暖": ["warm"],
    "我们": ["we"],
}


@pytest.mark.parametrize("method", ["semantic-hub", "wendler"])
def test_running_text_preset_equals_paper_transcription(tiny, method):
    model, reference, tok = tiny
    data = ParallelData.from_records([{"zh": t, "en": "x"} for t in ZH_TEXTS], name="zh4")
    analysis = ChineseRunningText(method=method, dictionary=DICTIONARY)
    result = semantic_hub_scan(model, data, analyses=[analysis], progress=False)
    ref = rt.running_text_lens(
        reference, tok, ZH_TEXTS, DICTIONARY, leading_space=True,
        lens=wd.normed_logprobs if method == "wendler" else None,
    )  # fmt: skip
    opts = result.options["chinese_running_text"]
    assert opts["n_positions"] == ref["zh"].shape[0] and opts["bos"] == "none"
    assert opts["n_texts_with_words"] == ref["n_texts"]
    n = model.n_layers
    for metric, key in (("logp_zh", "zh_mean"), ("logp_en_max", "en_mean")):
        got = _per_layer(result, "chinese_running_text", metric, "", n)
        np.testing.assert_allclose(got, ref[key], atol=ATOL, err_msg=metric)


def test_first_gloss_dictionary_equals_the_transcribed_parser():
    ref = rt.parse_cedict(rt.cedict_lines())
    got = first_gloss_dictionary()
    assert {k: list(v) for k, v in got.items()} == dict(ref)


def test_method_is_checked_and_explicit_options_win():
    with pytest.raises(ValueError, match="method='paper'"):
        TranslationLens(method="paper")
    lens = TranslationLens(method="wendler", few_shot=1, token_policy="first")
    assert (lens.few_shot, lens.token_policy, lens.demo_sampling) == (1, "first", "random")
    assert lens.options["method_source"].startswith("github.com/epfl-dlab")
    default = TranslationLens()
    assert (default.few_shot, default.demo_sampling, default.final_norm) == (2, "cyclic", True)
    assert LanguageProbability(method="semantic-hub").final_norm is False
    with pytest.raises(ValueError, match="method="):
        semantic_hub_scan("no-such-model", [{"a": "x"}], method="nope")
