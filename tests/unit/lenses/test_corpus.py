"""The lens corpus: n-grams, disjointness from the evaluation data, files, sampling and cache."""

from __future__ import annotations

import pytest

from hublens.data.builtin import load_builtin
from hublens.lenses import corpus as corpus_mod
from hublens.lenses.corpus import Corpus, default_corpus, evaluation_ngrams, ngrams, texts_sha256


def test_ngrams_count_words_and_cjk_characters():
    assert ngrams("a b c d e f g h", 8) == {tuple("abcdefgh")}
    assert ngrams("A b c d e f g", 8) == set()
    assert ngrams("我的奶奶总是说过", 8) == {tuple("我的奶奶总是说过")}
    assert ngrams("Hello, World!", 2) == {("hello", "world")}


def test_evaluation_ngrams_cover_every_builtin_text():
    banned = evaluation_ngrams()
    sentence = load_builtin("multilingual-sentences").items[0]["zh"]
    code = load_builtin("code-args").items[0]["code"]
    for text in (sentence, code):
        grams = ngrams(text)
        assert grams and grams <= banned


def test_sha256_is_order_and_boundary_sensitive():
    assert texts_sha256(["ab", "c"]) != texts_sha256(["a", "bc"])
    assert texts_sha256(["a", "b"]) != texts_sha256(["b", "a"])


def test_corpus_file(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("first text\n\n  \nsecond 文本\n", encoding="utf-8")
    corpus = Corpus.from_file(path)
    assert corpus.texts == ("first text", "second 文本")
    assert corpus.sha256 == texts_sha256(corpus.texts)
    assert corpus.record()["n_texts"] == 2
    assert Corpus.from_json(corpus.to_json()) == corpus


@pytest.mark.parametrize(
    ("content", "match"), [(b"\xff\xfe\x00bad", "not UTF-8"), (b"\n \n", "holds no text")]
)
def test_corpus_file_errors(tmp_path, content, match):
    path = tmp_path / "c.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        Corpus.from_file(path)
    with pytest.raises(ValueError, match="no such file"):
        Corpus.from_file(tmp_path / "missing.txt")


def test_tampered_corpus_is_refused():
    corpus = Corpus.from_texts(["x"], name="t")
    with pytest.raises(ValueError, match="sha256"):
        Corpus(texts=("y",), name="t", sha256=corpus.sha256, languages={})


def test_default_corpus_samples_seeded_equal_shares_and_caches(tiny_llama, tmp_path, monkeypatch):
    model, _ = tiny_llama
    monkeypatch.setenv("HUBLENS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(corpus_mod, "MAX_NEW_TOKENS", 6)
    n = 2 * len(corpus_mod.LANGUAGES)
    first = default_corpus(model, n_texts=n, seed=3, batch_size=7, cache=False)
    again = default_corpus(model, n_texts=n, seed=3, batch_size=7, cache=False)
    other = default_corpus(model, n_texts=n, seed=4, batch_size=7, cache=False)
    assert first.texts == again.texts and first.texts != other.texts
    assert sum(first.languages.values()) + first.how["n_dropped_overlap"] == n
    assert set(first.languages) == set(corpus_mod.LANGUAGES)
    for text, (_, prompt) in zip(first.texts, corpus_mod._plan(n), strict=False):
        assert text.startswith(prompt)
    cached = default_corpus(model, n_texts=n, seed=3, batch_size=7)
    assert corpus_mod.corpus_cache_path(model, n_texts=n, seed=3).is_file()
    monkeypatch.setattr(corpus_mod, "_sample", None)  # a cache hit must not sample
    assert default_corpus(model, n_texts=n, seed=3) == cached == first


def test_default_corpus_drops_samples_overlapping_evaluation(tiny_llama, monkeypatch, tmp_path):
    model, _ = tiny_llama
    eval_text = load_builtin("multilingual-sentences").items[0]["en"]

    def fake_sample(model, prompts, seed, batch_size):
        return [
            p + " " + eval_text if i == 0 else p + " fresh words" for i, p in enumerate(prompts)
        ]

    monkeypatch.setattr(corpus_mod, "_sample", fake_sample)
    corpus = default_corpus(model, n_texts=10, seed=0, cache=False)
    assert corpus.how["n_dropped_overlap"] == 1 and len(corpus.texts) == 9
    assert all(eval_text not in t for t in corpus.texts)


@pytest.mark.parametrize("bad", [0, -1, True])
def test_default_corpus_bad_sizes(tiny_llama, bad):
    with pytest.raises(ValueError, match="n_texts"):
        default_corpus(tiny_llama[0], n_texts=bad, seed=0)
