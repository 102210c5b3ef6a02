"""Sanity tests of the source-method transcriptions in tests/reference (no hublens import).

The transcriptions are checked against hand computations, transformers' own outputs (forward
hooks, ``output_hidden_states``, logits) and, for Wendler's sampling, pandas itself.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import build_tiny, build_tokenizer
from tests.reference import semantic_hub as sh
from tests.reference import semantic_hub_running_text as rt
from tests.reference import wendler as wd

ZH_EXTRA = ("狗 猫 温暖 睡觉 花 垫子 我们 喜欢",)


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def tiny(request):
    """(plain HF model, tokenizer) of each tiny architecture."""
    hf, _, tok = build_tiny(request.param, extra_corpus=ZH_EXTRA)
    return hf, tok


def _raw_block_outputs(model, ids):
    captured = []
    hooks = [
        layer.register_forward_hook(
            lambda m, a, o: captured.append(o[0] if isinstance(o, tuple) else o)
        )
        for layer in model.model.layers
    ]
    try:
        with torch.no_grad():
            logits = model(ids).logits
    finally:
        for h in hooks:
            h.remove()
    return torch.stack([c[0] for c in captured]), logits[0]


# ---- semantic hub: states and lens -----------------------------------------------------------


def test_last_layer_is_transformers_last_hidden_state_and_normed(tiny):
    model, tok = tiny
    text = "The cat sleeps on the warm mat."
    states = sh.hidden_states(model, tok, text)
    ids = tok(text, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    assert states.shape[0] == model.config.num_hidden_layers
    np.testing.assert_allclose(states[-1], out.hidden_states[-1][0].numpy(), atol=1e-6)
    raw, _ = _raw_block_outputs(model, ids)
    with torch.no_grad():
        normed = model.model.norm(raw[-1]).numpy()
    np.testing.assert_allclose(states[-1], normed, atol=1e-5)
    assert not np.allclose(states[-1], raw[-1].numpy(), atol=1e-3)  # the last layer IS normed
    for i in range(len(raw) - 1):  # the other layers are raw block outputs
        np.testing.assert_allclose(states[i], raw[i].numpy(), atol=1e-5)


def test_paper_lens_no_norm_and_last_layer_equals_model_logprobs(tiny):
    model, tok = tiny
    text = "3+2=5 and 4*2=8"
    logp = sh.hidden_logprobs(model, tok, text)
    ids = tok(text, return_tensors="pt").input_ids
    raw, logits = _raw_block_outputs(model, ids)
    np.testing.assert_allclose(logp[-1], torch.log_softmax(logits, -1).numpy(), atol=1e-4)
    w_u = model.lm_head.weight.detach()
    by_hand = torch.log_softmax(raw[0] @ w_u.T, -1).numpy()  # layer 0: no norm
    np.testing.assert_allclose(logp[0], by_hand, atol=1e-4)


# ---- semantic hub: similarity ------------------------------------------------------------------


def test_cue_rule():
    zh, en = sh.add_cues(
        ["猫在睡觉。", "猫在睡觉", "猫在睡觉.", "“好。”"],
        ["The cat sleeps.", 'He said "no."', "cat", "Why?", 'He said "no".'],
    )
    assert zh == ["猫在睡觉。这代表了", "猫在睡觉", "猫在睡觉.", "“好。”"]
    assert en == [
        "The cat sleeps.This represents",
        'He said "no."This represents',
        "cat",
        "Why?",
        'He said "no".This represents',
    ]


def test_eq1_by_hand_on_three_items():
    c = np.array([[0.9, 0.1, 0.2], [0.3, 0.8, 0.4], [0.5, 0.6, 0.7]])
    cos = np.stack([c, c * 2], axis=-1)  # two "layers"
    off = (0.1 + 0.2 + 0.3 + 0.4 + 0.5 + 0.6) / 6
    expected = np.array(
        [[0.9 - off, 0.8 - off, 0.7 - off], [1.8 - 2 * off, 1.6 - 2 * off, 1.4 - 2 * off]]
    )
    np.testing.assert_allclose(sh.baseline_adjusted(cos), expected, atol=1e-12)
    np.testing.assert_allclose(sh.global_baseline(cos), [off, 2 * off], atol=1e-12)
    # per-item values differ from a per-item baseline mean_{j != i} cos_ij, the means agree
    per_row = np.array([0.9 - 0.15, 0.8 - 0.35, 0.7 - 0.55])
    assert not np.allclose(expected[0], per_row)
    np.testing.assert_allclose(expected[0].mean(), per_row.mean(), atol=1e-12)


def test_similarity_matches_numpy_cosines(tiny):
    model, tok = tiny
    en = ["The cat sleeps on the warm mat.", "three plus two equals five", "flower Flower"]
    zh = ["猫在温暖的垫子上睡觉。", "三加二等于五", "花"]
    res = sh.similarity(model, tok, en, zh)
    cued_en = ["The cat sleeps on the warm mat.This represents", en[1], en[2]]
    cued_zh = ["猫在温暖的垫子上睡觉。这代表了", zh[1], zh[2]]

    def last(text):
        raw, _ = _raw_block_outputs(model, tok(text, return_tensors="pt").input_ids)
        with torch.no_grad():
            raw[-1] = model.model.norm(raw[-1])
        return raw[:, -1].double().numpy()

    x = np.stack([last(t) for t in cued_en])
    y = np.stack([last(t) for t in cued_zh])
    xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=-1, keepdims=True)
    cos = np.einsum("ild,jld->ijl", xn, yn)
    diag = np.einsum("iil->li", cos)
    base = (cos.sum((0, 1)) - diag.sum(1)) / 6
    np.testing.assert_allclose(res["per_item"], diag - base[:, None], atol=1e-5)
    np.testing.assert_allclose(res["mean"], (diag - base[:, None]).mean(1), atol=1e-5)


# ---- semantic hub: arithmetic ----------------------------------------------------------------


def test_arithmetic_items_and_groups():
    items = sh.arithmetic_items()
    assert sum(op == "+" for op, *_ in items) == 846
    assert sum(op == "*" for op, *_ in items) == 277
    assert all(r < 100 and (r == o + t if op == "+" else r == o * t) for op, o, t, r in items)
    numbers, texts = sh.arithmetic_pair_texts([("+", 3, 2, 5), ("*", 4, 2, 8)])
    assert numbers == ["3+2", "4*2"] and texts == ["three plus two", "four times two"]
    few = [("+", 3, 2, 5), ("+", 4, 1, 5), ("*", 2, 3, 6)]
    cos = np.arange(9, dtype=float).reshape(3, 3, 1)
    g = sh.arithmetic_groups(cos, few)
    assert g["exact_match"][0] == pytest.approx((0 + 4 + 8) / 3)
    assert g["same_result"][0] == pytest.approx((0 + 1 + 3 + 4 + 8) / 5)  # diagonal included
    assert g["different_result"][0] == pytest.approx((2 + 5 + 6 + 7) / 4)
    assert g["diff"][0] == pytest.approx(4 - 4)  # baseline: mean over all 9 pairs


def test_arithmetic_lens_reads_numeral_and_spaced_word(tiny):
    model, tok = tiny
    items = [("+", 3, 2, 5), ("*", 4, 2, 8)]
    res = sh.arithmetic_lens(model, tok, items)
    assert res["numeral"].shape == (2, model.config.num_hidden_layers)
    for row, (op, other, target, result) in enumerate(items):
        ids = tok(f"{result}={other}{op}", return_tensors="pt").input_ids
        assert ids[0, 0].item() == tok.bos_token_id
        _, logits = _raw_block_outputs(model, ids)
        final = torch.log_softmax(logits[-1], -1)
        n_id = tok.encode(str(target), add_special_tokens=False)[0]
        w_id = tok.encode(" " + sh.number_word(target), add_special_tokens=False)[0]
        assert res["numeral"][row, -1] == pytest.approx(final[n_id].item(), abs=1e-4)
        assert res["word"][row, -1] == pytest.approx(final[w_id].item(), abs=1e-4)


# ---- semantic hub: language probability -------------------------------------------------------


def test_language_given_token_rules():
    counts = np.array([[3.0, 1.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]])  # 2 languages, 4 tokens
    p = sh.language_given_token(counts)
    # p(v|en) = [.75, .25, 0, 0], p(v|zh) = [0, .5, .5, 0]
    np.testing.assert_allclose(p[:, 0], [1.0, 0.0])
    np.testing.assert_allclose(p[:, 1], [0.25 / 0.75, 0.5 / 0.75])
    np.testing.assert_allclose(p[:, 2], [0.0, 1.0])
    np.testing.assert_allclose(p[:, 3], [0.5, 0.5])  # no language: 1/K
    np.testing.assert_allclose(p.sum(0), 1.0)


def test_token_counts_from_texts():
    tok = build_tokenizer()
    counts = sh.token_counts_from_texts(tok, {"en": ["the cat the"], "zh": ["花"]}, ["en", "zh"])
    assert counts.shape == (2, tok.vocab_size)
    assert counts[0].sum() == len(tok.tokenize("the cat the"))
    assert counts[1, tok.convert_tokens_to_ids(tok.tokenize("花")[0])] == 1


def test_language_probabilities_weigh_every_position_including_bos(tiny):
    model, tok = tiny
    texts = ["The cat sleeps.", "猫在温暖的垫子上睡觉。"]
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 3, size=(3, tok.vocab_size)).astype(float)
    counts[:, tok.bos_token_id] = 0  # BOS is in no language: 1/K
    table = sh.language_given_token(counts)
    got = sh.language_probabilities(model, tok, texts, table)
    rows = []
    for text in texts:
        ids = tok(text, return_tensors="pt").input_ids
        assert ids[0, 0].item() == tok.bos_token_id
        raw, _ = _raw_block_outputs(model, ids)
        with torch.no_grad():
            raw[-1] = model.model.norm(raw[-1])
            probs = torch.softmax(raw.double() @ model.lm_head.weight.double().T, -1).numpy()
        for pos in range(ids.shape[1]):
            rows.append(probs[:, pos] @ table.T)  # (L, K), one row per position
    np.testing.assert_allclose(got, np.mean(rows, axis=0), atol=1e-5)
    assert len(rows) == sum(len(tok(t).input_ids) for t in texts)


# ---- semantic hub: Chinese running text -------------------------------------------------------


def test_parse_cedict_first_gloss_surname_and_parentheses():
    lines = [
        "# comment line\n",
        "貓 猫 [mao1] /cat (CL:隻|只[zhi1])/feline/\n",
        "貓 猫 [Mao1] /surname Mao/\n",
        "睡覺 睡觉 [shui4 jiao4] /to go to bed/to sleep/\n",
        "沙發 沙发 [sha1 fa1] /sofa (loanword) (furniture)/\n",
        "睡覺 睡觉 [shui4 jiao4] /nap/\n",
    ]
    d = rt.parse_cedict(lines)
    assert d == {"猫": ["cat"], "睡觉": ["to go to bed", "nap"], "沙发": ["sofa"]}


def test_parse_real_cedict_file():
    d = rt.parse_cedict(rt.cedict_lines())
    assert len(d) > 100_000
    assert "cat" in d["猫"]


def test_running_text_alignment_rules():
    tok = build_tokenizer(ZH_EXTRA)
    zh2en = {"睡觉": ["cat", "warm"], "温暖": ["cat"], "的": ["cat"]}
    ids = tok.encode("温暖睡觉。", add_special_tokens=False)
    pieces = [tok.decode([i]) for i in ids]
    assert pieces == ["温暖", "睡觉", "。"]
    translations, next_token, got_ids = rt.align(tok, "温暖睡觉。", zh2en, leading_space=True)
    cat = tok.encode(" cat", add_special_tokens=False)
    assert len(cat) == 1 and len(tok.encode(" warm", add_special_tokens=False)) > 1
    # 温暖 is at position 0 (no previous position); 睡觉 keeps only its one-token " cat"
    assert translations == {0: cat} and next_token == {0: ids[1]} and got_ids == ids
    # without the space, "cat" is two tokens: nothing is readable
    assert rt.align(tok, "温暖睡觉。", zh2en, leading_space=False)[0] == {}
    # 的 is split into two byte tokens sharing one character span: the whole text is dropped
    assert rt.align(tok, "温暖的猫睡觉。", zh2en, leading_space=True) is None


def test_running_text_lens_reads_without_bos(tiny):
    model, tok = tiny
    zh2en = {"睡觉": ["cat"]}
    res = rt.running_text_lens(
        model, tok, ["温暖睡觉。", "温暖的猫睡觉。"], zh2en, leading_space=True
    )
    assert res["n_texts"] == 1 and res["zh"].shape[0] == 1
    ids = torch.tensor([tok.encode("温暖睡觉。", add_special_tokens=False)])
    assert ids[0, 0].item() != tok.bos_token_id
    _, logits = _raw_block_outputs(model, ids)
    final = torch.log_softmax(logits[0], -1)
    cat = tok.encode(" cat", add_special_tokens=False)[0]
    assert res["zh_mean"][-1] == pytest.approx(final[ids[0, 1]].item(), abs=1e-4)
    assert res["en_mean"][-1] == pytest.approx(final[cat].item(), abs=1e-4)


# ---- Wendler: prefix sets ---------------------------------------------------------------------


def test_prefix_sets_on_byte_level_tokenizer():
    tok = build_tokenizer()
    vocab = tok.get_vocab()
    assert wd.is_byte_level(tok)
    flower = set(wd.prefix_token_ids(tok, "flower", "en"))
    expected = {
        vocab[p] for p in ("f", "fl", "flo", "flow", "flowe", "flower", "Ġf", "Ġfl") if p in vocab
    }
    assert {vocab["f"], vocab["flower"]} <= flower and flower == expected
    hua = wd.prefix_token_ids(tok, "花", "zh")
    first_byte = vocab[wd._byte_chars()["花".encode()[0]]]
    assert set(hua) == {vocab["èĬ±"], first_byte}
    assert first_byte not in wd.prefix_token_ids(tok, "花", "en")  # only zh/ru get the byte


def _sentencepiece_tokenizer():
    """A tiny Llama-2-style tokenizer: ``▁`` spaces and <0xXX> byte fallback."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    pieces = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    pieces += ["▁", "f", "l", "o", "w", "e", "r", "fl", "▁f", "▁fl", "▁flo", "ow", "花", "云"]
    vocab = {p: i for i, p in enumerate(pieces)}
    merges = [("f", "l"), ("▁", "f"), ("▁f", "l"), ("▁fl", "o"), ("o", "w")]
    bpe = models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True)
    tk = Tokenizer(bpe)
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", unk_token="<unk>")


def test_prefix_sets_on_sentencepiece_tokenizer_exclude_ascii_bytes():
    tok = _sentencepiece_tokenizer()
    vocab = tok.get_vocab()
    assert not wd.is_byte_level(tok)
    flower = set(wd.prefix_token_ids(tok, "flower", "en"))
    assert flower == {vocab[p] for p in ("f", "fl", "▁f", "▁fl", "▁flo")}
    assert vocab["<0x66>"] not in flower  # no ASCII byte-fallback token
    assert set(wd.prefix_token_ids(tok, "花", "zh")) == {vocab["花"], vocab["<0xE8>"]}
    assert set(wd.prefix_token_ids(tok, "花朵", "zh")) == {vocab["花"], vocab["<0xE8>"]}
    assert wd.first_byte_token(tok, "flower") is None


# ---- Wendler: prompts -------------------------------------------------------------------------

ROWS = [
    wd.Row("flower", "fleur", "花"),
    wd.Row("cat", "chat", "猫"),
    wd.Row("dog", "chien", "狗"),
    wd.Row("warm", "chaud", "温暖"),
    wd.Row("sleep", "dormir", "睡觉"),
    wd.Row("mat", "tapis", "垫子"),
    wd.Row("we", "nous", "我们"),
]


def test_seeded_sampling_equals_pandas_sample():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame([{"en": r.en, "fr": r.src, "zh": r.tgt} for r in ROWS])
    np.random.seed(42)
    expected = []
    for ind in range(len(df)):
        temp = df[df.index != ind]
        demos = temp.sample(4)
        expected.append(list(demos["fr"]))
    rng = np.random.RandomState(42)
    tok = build_tokenizer(ZH_EXTRA)
    n_read = 0
    for ind in range(len(ROWS)):
        d = wd.sample_prompt(ROWS, ind, rng, tok, lang1="fr", lang2="zh")
        prompt = d["prompt"] if d is not None else None
        if prompt is not None:
            lines = prompt.split("\n")
            assert len(lines) == 5 and lines[-1] == f'Français: "{ROWS[ind].src}" - 中文: "'
            assert [line.split('"')[1] for line in lines[:4]] == expected[ind]
            assert ROWS[ind].src not in expected[ind]
            n_read += 1
    assert n_read >= 5


def test_build_dataset_is_deterministic_and_applies_skip_rules():
    tok = build_tokenizer(ZH_EXTRA)
    rows = [*ROWS, wd.Row("cat", "chaton", "catamaran")]  # en inside the target: dropped
    a = wd.build_dataset(rows, tok, input_lang="fr", target_lang="zh", seed=42)
    b = wd.build_dataset(rows, tok, input_lang="fr", target_lang="zh", seed=42)
    c = wd.build_dataset(rows, tok, input_lang="fr", target_lang="zh", seed=7)
    assert [d["prompt"] for d in a] == [d["prompt"] for d in b]
    assert [d["prompt"] for d in a] != [d["prompt"] for d in c]
    assert all("catamaran" not in d["prompt"] for d in a)
    assert all(not set(d["out_token_id"]) & set(d["latent_token_id"]) for d in a)
    # an overlapping prefix set skips the row: target "fl" shares the tokens "f"/"fl" of "flower"
    skipped = wd.sample_prompt(
        [wd.Row("flower", "fleur", "fl花"), *ROWS[1:5]],
        0,
        np.random.RandomState(0),
        tok,
        lang1="fr",
        lang2="zh",
    )
    assert skipped is None


def test_wendler_lens_final_norm_every_layer(tiny):
    model, tok = tiny
    prompt = 'Français: "chat" - 中文: "猫"\nFrançais: "fleur" - 中文: "'
    probs = wd.last_token_probs(model, tok, prompt)
    ids = tok(prompt, return_tensors="pt").input_ids
    assert ids[0, 0].item() == tok.bos_token_id
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
    np.testing.assert_allclose(probs[-1], torch.softmax(out.logits[0, -1], -1).numpy(), atol=1e-5)
    with torch.no_grad():  # middle layers: hidden_states[i + 1] is block i's raw output
        h = out.hidden_states[1][0, -1]
        by_hand = torch.softmax(model.lm_head(model.model.norm(h)), -1).numpy()
    np.testing.assert_allclose(probs[0], by_hand, atol=1e-5)
    data = [{"prompt": prompt, "latent_token_id": [5, 7], "out_token_id": [9]}]
    res = wd.translation_lens(model, tok, data)
    np.testing.assert_allclose(res["latent"][0], probs[:, 5] + probs[:, 7], atol=1e-6)
    np.testing.assert_allclose(res["out"][0], probs[:, 9], atol=1e-6)
