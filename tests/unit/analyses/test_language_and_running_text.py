"""Language probabilities (Fig. 4) and the Chinese running-text lens against hand computations."""

from __future__ import annotations

import math

import pytest
import torch

import hublens
from hublens import semantic_hub_scan
from hublens.analyses.language import (
    LanguageProbability,
    check_languages,
    language_given_token,
    token_frequencies,
)
from hublens.analyses.running_text import ChineseRunningText, align_words, clean_gloss
from hublens.data import ParallelData
from hublens.hooks import LogitLens, attached_hooks
from tests.helpers.lens_reference import hidden_states, lens_logprobs, rows_by_key, token_ids

RECORDS = [
    {"en": "The cat sleeps on the warm mat.", "zh": "猫在温暖的垫子上睡觉。"},
    {"en": "three plus two equals five", "zh": "三加二等于五"},
    {"en": "flower", "zh": "花"},
]



def test_expectation_equals_dense_softmax_matmul(tiny):
    model, reference, _ = tiny
    h = torch.randn(2, 5, model.d_model)
    values = torch.rand(model.d_vocab, 3)
    lens = LogitLens.from_model(model, final_norm=True)
    lens.max_chunk_elements = 700  # many chunks: exercises the running-max rescaling
    got = lens.expectation(h, values)
    expected = lens_logprobs(reference, h).exp() @ values
    assert got.shape == (2, 5, 3)
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="values must be"):
        lens.expectation(h, values[:-1])


def test_language_probability_equals_hand_computation(tiny):
    model, reference, _ = tiny
    torch.manual_seed(0)
    k = 3
    raw = torch.rand(model.d_vocab, k)
    raw[torch.rand(model.d_vocab) < 0.3] = 0  # tokens that are words in no language
    matrix = language_given_token(raw.double())
    data = ParallelData.from_records(RECORDS, name="lp")
    analysis = LanguageProbability(languages=("en", "zh", "fr"), token_language=matrix)
    result = semantic_hub_scan(model, data, analyses=[analysis], batch_size=2, progress=False)
    skip = 1 if model.prepend_bos else 0
    for group in ("en", "zh"):
        per_text = []
        for record in RECORDS:
            h = hidden_states(reference, torch.tensor([token_ids(model, record[group])]))[:, skip:]
            p = lens_logprobs(reference, h).exp()  # (layer, pos, vocab)
            q = p @ matrix.float()  # unnormalised p(lang | h)
            mass = q.sum(-1, keepdim=True)
            normed = q / mass
            entropy = -(normed * normed.log()).sum(-1) / math.log(k)
            per_text.append(
                torch.cat([normed, entropy[..., None], mass], -1).mean(1)  # over positions
            )
        expected = torch.stack(per_text).double().mean(0)  # over texts: (layer, K + 2)
        rows = rows_by_key(result, "language_probability")
        names = ["p_en", "p_zh", "p_fr", "lang_entropy", "p_word"]
        for layer in range(model.n_layers):
            for m, metric in enumerate(names):
                row = rows[(metric, group, layer)]
                assert row.n == len(RECORDS)
                assert abs(row.mean - float(expected[layer, m])) < 1e-4, (group, layer, metric)
        total = sum(rows[(f"p_{lang}", group, 0)].mean for lang in ("en", "zh", "fr"))
        assert abs(total - 1) < 1e-5
    assert attached_hooks(model) == []


def test_wordfreq_matrix_matches_wordfreq_directly(tiny):
    from wordfreq import word_frequency

    model, _, _ = tiny
    tok = model.tokenizer
    freqs = token_frequencies(tok, model.d_vocab, ("en", "fr"))
    assert freqs.shape == (model.d_vocab, 2)
    checked = 0
    for token_id in range(len(tok)):
        text = tok.decode([token_id]).strip()
        if token_id in tok.all_special_ids or not text.isalpha() or len(text) < 3:
            continue
        assert float(freqs[token_id, 0]) == pytest.approx(word_frequency(text, "en"))
        assert float(freqs[token_id, 1]) == pytest.approx(word_frequency(text, "fr"))
        checked += 1
    assert checked > 20
    for special in tok.all_special_ids:
        assert float(freqs[special].sum()) == 0.0
    p = language_given_token(freqs)
    row_sums = p.sum(-1)
    assert torch.all(((row_sums - 1).abs() < 1e-5) | (row_sums == 0))


def test_language_probability_rejects_bad_input():
    with pytest.raises(ValueError, match="Unknown language code"):
        check_languages(["en", "xx"])
    with pytest.raises(ValueError, match="duplicates"):
        check_languages(["en", "en"])
    with pytest.raises(ValueError, match="max_items"):
        LanguageProbability(max_items=0)
    with pytest.raises(ValueError, match="token_language must be"):
        LanguageProbability(languages=("en", "zh"), token_language=torch.rand(10, 3))


# ------------------------------------------------------------------------ running text

def _char_level_model(kind: str):
    """A tiny model whose tokenizer has one token per Han character and whole English words,
    so every jieba word of a text is made of whole tokens."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from tests.conftest import build_tiny

    text = "猫在温暖的垫子上睡觉。两只猫在垫子上。"
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}
    for piece in [*dict.fromkeys(text), " cat", " sleep", " warm", " mat", " garden", " flower",
                  " on", " at", " in", " two", " cushion", " pad", " the", " ", "."]:
        vocab.setdefault(piece, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r" ?[A-Za-z]+|."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>",
    )
    hf, reference, _ = build_tiny(kind, seed=1, tokenizer=tokenizer)
    return hublens.load_model(hf, tokenizer, prepend_bos=True), reference


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def char_model(request):
    model, reference = _char_level_model(request.param)
    yield model, reference
    assert attached_hooks(model) == []


DICTIONARY = {
    "猫": ["cat"],
    "温暖": ["warm"],
    "垫子": ["cushion", "mat", "pad"],
    "睡觉": ["sleep"],
    "两只": ["two pieces"],  # no single-word gloss: dropped and counted
}


def test_running_text_equals_hand_lens(char_model):
    model, reference = char_model
    texts = ["猫在温暖的垫子上睡觉。", "两只猫在垫子上。"]
    data = ParallelData.from_records([{"zh": t, "en": "x"} for t in texts], name="zh")
    analysis = ChineseRunningText(dictionary=DICTIONARY)
    result = semantic_hub_scan(model, data, analyses=[analysis], batch_size=2, progress=False)
    tok = model.tokenizer
    # By hand: words in the dictionary, not at the text start, read at the position before.
    expected_words = {0: ["温暖", "垫子", "睡觉"], 1: ["猫", "垫子"]}
    zh, en = [], []
    for t, text in enumerate(texts):
        ids = token_ids(model, text)
        h = hidden_states(reference, torch.tensor([ids]))
        lp = lens_logprobs(reference, h)  # (layer, pos, vocab)
        for word in expected_words[t]:
            char_pos = text.index(word)
            position = char_pos + (1 if model.prepend_bos else 0) - 1  # one token per character
            assert ids[position + 1] == tok.convert_tokens_to_ids(word[0])
            zh.append(lp[:, position, ids[position + 1]])
            glosses = [tok.convert_tokens_to_ids(" " + g) for g in DICTIONARY[word]]
            en.append(lp[:, position, glosses].max(-1).values)
    zh_t, en_t = torch.stack(zh).double(), torch.stack(en).double()
    rows = rows_by_key(result, "chinese_running_text")
    for layer in range(model.n_layers):
        assert rows[("logp_zh", "", layer)].n == 5
        assert abs(rows[("logp_zh", "", layer)].mean - float(zh_t[:, layer].mean())) < 1e-4
        assert abs(rows[("logp_en_max", "", layer)].mean - float(en_t[:, layer].mean())) < 1e-4
        frac = float((en_t[:, layer] > zh_t[:, layer]).double().mean())
        assert abs(rows[("frac_en_gt_zh", "", layer)].mean - frac) < 1e-9
    dropped = result.options["chinese_running_text"]["dropped"]
    # "猫" at the start of text 0 and "两只" at the start of text 1; punctuation; 在/的/上.
    assert dropped["at_start"] == 2
    assert dropped["not_han"] == 2
    assert dropped["not_in_dictionary"] == 5


def test_running_text_drops_words_that_straddle_tokens(tiny):
    model, _, _ = tiny  # byte-level BPE: whole sentences merge into one token
    dropped = __import__("collections").Counter()
    words = align_words(model, "猫在温暖的垫子上睡觉。", DICTIONARY, dropped)
    assert words == [] and dropped["not_aligned"] >= 1


def test_clean_gloss():
    assert clean_gloss("to sleep") == "sleep"
    assert clean_gloss("sofa (loanword)") == "sofa"
    assert clean_gloss("CL:隻|只[zhi1]") is None
    assert clean_gloss("variant of 貓|猫[mao1]") is None
    assert clean_gloss("two pieces") is None


def test_running_text_rejects_bad_input(char_model):
    model, _ = char_model
    data = ParallelData.from_records([{"en": "a", "fr": "b"}, {"en": "c", "fr": "d"}], name="x")
    with pytest.raises(ValueError, match="no 'zh' column"):
        semantic_hub_scan(model, data, analyses=[ChineseRunningText(dictionary=DICTIONARY)],
                          progress=False)
    zh = ParallelData.from_records([{"zh": "在的上。", "en": "a"}, {"zh": "里。", "en": "b"}],
                                   name="none")
    with pytest.raises(ValueError, match="survived"):
        semantic_hub_scan(model, zh, analyses=[ChineseRunningText(dictionary=DICTIONARY)],
                          progress=False)
    with pytest.raises(ValueError, match="max_items"):
        semantic_hub_scan(model, zh, analyses=[ChineseRunningText(max_items=0)], progress=False)
