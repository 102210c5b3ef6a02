"""The token -> language table of the language probabilities: ``p(lang | v)`` per vocabulary id.

Two sources (``LanguageProbability(token_table=...)``):

* ``"wordfreq"`` (hublens): wordfreq's frequency of each token's decoded text in each language,
  under a uniform prior over the chosen languages (:func:`token_frequencies`, cached on disk).
* ``"token-counts"`` (the semantic hub paper's ``compute_tokenizer_language_probabilities.py``):
  how often each id occurs when a per-language corpus is tokenized, ``p(v | lang) = count /
  total``, normalised over languages (:func:`token_counts`). The paper counts 100,000 C4
  documents per language, which cannot be had offline; the corpus is the user's
  (``count_corpus=``) or, by default, wordfreq's word lists as a corpus: each of the top
  :data:`CORPUS_WORDS` words of a language tokenized alone (after a space, except in languages
  written without spaces) and counted with its wordfreq frequency as weight
  (:func:`wordfreq_token_counts`).

:func:`language_given_token` turns either into ``p(lang | v)``; a token no language has gets
0 (``no_language="drop"``) or 1/K (``"uniform"``, the paper's).
"""

from __future__ import annotations

import hashlib
import json
import logging
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib.metadata import version
from typing import Any

import torch
from torch import Tensor

from hublens.analyses.vocab import token_texts, tokenizer_fingerprint
from hublens.atomic import atomic_path
from hublens.cache import cache_root

logger = logging.getLogger(__name__)

__all__ = [
    "CORPUS_WORDS",
    "cached_token_frequencies",
    "check_languages",
    "language_given_token",
    "token_counts",
    "token_frequencies",
    "wordfreq_languages",
    "wordfreq_token_counts",
]

#: Bump when the recipe of the matrix changes (invalidates cached files).
_RECIPE = 1
_CACHE_DIR = "language-prob"
#: Words per language of the default offline counting corpus.
CORPUS_WORDS = 20_000
#: Languages written without spaces between words (their words are counted without one).
_NO_SPACE = ("zh", "ja", "th", "ko")


def wordfreq_languages() -> list[str]:
    """Language codes wordfreq has a frequency list for."""
    from wordfreq import available_languages

    return sorted(available_languages(wordlist="best"))


def check_languages(languages: Sequence[str]) -> tuple[str, ...]:
    """Validate language codes against wordfreq.

    Args:
        languages: ISO codes, e.g. ``("en", "zh")``.

    Returns:
        The codes as a tuple.

    Raises:
        ValueError: Empty, duplicated, or a code wordfreq has no list for.
    """
    if isinstance(languages, str):
        raise ValueError(f"languages={languages!r}: pass a sequence of codes, e.g. ('en', 'zh').")
    langs = tuple(languages)
    if not langs:
        raise ValueError("languages=(): pass at least one language code, e.g. ('en', 'zh').")
    if len(set(langs)) != len(langs):
        raise ValueError(f"languages={langs} has duplicates; list each code once.")
    known = wordfreq_languages()
    unknown = [lang for lang in langs if lang not in known]
    if unknown:
        raise ValueError(
            f"Unknown language code(s) {unknown} for wordfreq; choose from {', '.join(known)}."
        )
    return langs


def _frequency_function(lang: str) -> Any:
    """``text -> frequency`` for one language.

    Languages wordfreq segments with MeCab (ja, ko) are looked up directly (NFKC, casefolded,
    whole token text, no segmentation), since MeCab is not a hublens dependency; every other
    language uses ``wordfreq.word_frequency`` unchanged.
    """
    from wordfreq import get_frequency_dict, word_frequency
    from wordfreq.language_info import get_language_info

    if get_language_info(lang)["tokenizer"] == "mecab":
        freqs = get_frequency_dict(lang)

        def lookup(text: str) -> float:
            return float(freqs.get(unicodedata.normalize("NFKC", text).casefold(), 0.0))

        return lookup
    return lambda text: float(word_frequency(text, lang))


def token_frequencies(tokenizer: Any, d_vocab: int, languages: Sequence[str]) -> Tensor:
    """Wordfreq frequency of every vocabulary entry's text in every language (no cache).

    Args:
        tokenizer: A Hugging Face tokenizer.
        d_vocab: Number of unembedding rows.
        languages: Validated language codes.

    Returns:
        ``(d_vocab, K)`` float64; rows of non-word tokens (see
        :func:`hublens.analyses.vocab.token_texts`) are 0.
    """
    texts = token_texts(tokenizer, d_vocab)
    unique = sorted({t for t in texts if t is not None})
    index = {t: i for i, t in enumerate(unique)}
    table = torch.zeros(len(unique), len(languages), dtype=torch.float64)
    for k, lang in enumerate(languages):
        freq = _frequency_function(lang)
        table[:, k] = torch.tensor([freq(t) for t in unique], dtype=torch.float64)
    out = torch.zeros(d_vocab, len(languages), dtype=torch.float64)
    rows = [i for i, t in enumerate(texts) if t is not None]
    if rows:
        out[rows] = table[[index[texts[i]] for i in rows]]  # type: ignore[index]
    return out


def language_given_token(
    frequencies: Tensor, *, no_language: str = "drop", n_rows: int | None = None
) -> Tensor:
    """``p(lang | v) = f_lang(v) / sum_l f_l(v)`` (uniform prior over the K languages).

    Args:
        frequencies: ``(d_vocab, K)`` non-negative frequencies (or per-language
            probabilities ``p(v | lang)``: the normalisation over languages is the same).
        no_language: Rows where every f is 0: ``"drop"`` (0, no language mass) or
            ``"uniform"`` (1/K for every language, the paper's).
        n_rows: Only the first ``n_rows`` ids belong to the table (the tokenizer's
            ``vocab_size``); later rows are 0 either way (the paper cuts them off). None: all.

    Returns:
        ``(d_vocab, K)`` float32.
    """
    if no_language not in ("drop", "uniform"):
        raise ValueError(f"no_language={no_language!r}: choose 'drop' or 'uniform'.")
    total = frequencies.sum(-1, keepdim=True)
    fill = 0.0 if no_language == "drop" else 1.0 / frequencies.shape[-1]
    out = torch.where(total > 0, frequencies / total.clamp_min(1e-300), fill)
    if n_rows is not None:
        out[n_rows:] = 0.0
    return out.float()


def token_counts(
    tokenizer: Any,
    d_vocab: int,
    corpus: Mapping[str, Sequence[str]],
    languages: Sequence[str],
    weights: Mapping[str, Sequence[float]] | None = None,
) -> Tensor:
    """``(d_vocab, K)`` per-language ``p(v | lang) = count(v) / total``, from tokenized texts.

    Every text of ``corpus[lang]`` is tokenized without special tokens and its ids counted
    (times ``weights[lang][i]`` when given); ids at or beyond the tokenizer's ``vocab_size``
    are not counted (the paper's table has ``vocab_size`` columns).

    Raises:
        ValueError: A language has no texts, or no counted token.
    """
    size = min(int(getattr(tokenizer, "vocab_size", d_vocab)), d_vocab)
    out = torch.zeros(d_vocab, len(languages), dtype=torch.float64)
    for k, lang in enumerate(languages):
        texts = list(corpus.get(lang, ()))
        if not texts:
            raise ValueError(
                f"count_corpus has no texts for language {lang!r}; pass count_corpus={{"
                f"{lang!r}: [texts, ...]}} for every language, or None for wordfreq's words."
            )
        w = [1.0] * len(texts) if weights is None else [float(x) for x in weights[lang]]
        encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
        column = torch.zeros(d_vocab, dtype=torch.float64)
        for ids, weight in zip(encoded, w, strict=True):
            kept = torch.tensor([i for i in ids if i < size], dtype=torch.long)
            column.index_add_(0, kept, torch.full((len(kept),), weight, dtype=torch.float64))
        if float(column.sum()) <= 0:
            raise ValueError(f"count_corpus[{lang!r}] yields no token to count.")
        out[:, k] = column / column.sum()
    return out


@lru_cache(maxsize=4)
def _wordfreq_corpus(lang: str, n: int) -> tuple[tuple[str, ...], tuple[float, ...]]:
    from wordfreq import get_frequency_dict

    top = sorted(get_frequency_dict(lang, wordlist="best").items(), key=lambda kv: -kv[1])[:n]
    space = "" if lang in _NO_SPACE else " "
    return tuple(space + w for w, _ in top), tuple(f for _, f in top)


def wordfreq_token_counts(
    tokenizer: Any, d_vocab: int, languages: Sequence[str], *, n_words: int = CORPUS_WORDS
) -> Tensor:
    """:func:`token_counts` of wordfreq's top ``n_words`` words per language, frequency-weighted.

    The offline stand-in for the paper's C4 counts: a corpus with wordfreq's word distribution.
    """
    corpus, weights = {}, {}
    for lang in languages:
        corpus[lang], weights[lang] = _wordfreq_corpus(lang, n_words)
    return token_counts(tokenizer, d_vocab, corpus, languages, weights)


def _cache_key(fingerprint: str, languages: Sequence[str]) -> str:
    blob = json.dumps(
        {
            "tokenizer": fingerprint,
            "languages": list(languages),
            "wordfreq": version("wordfreq"),
            "recipe": _RECIPE,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def cached_token_frequencies(
    tokenizer: Any, d_vocab: int, languages: Sequence[str], *, use_cache: bool = True
) -> tuple[Tensor, dict[str, Any]]:
    """:func:`token_frequencies`, cached on disk.

    The file is ``cache_root()/language-prob/<key>.safetensors`` with ``key`` a hash of the
    tokenizer fingerprint, the languages, wordfreq's version and the recipe version. It is
    written to a temporary file and renamed into place; an unreadable or mismatched file is
    rebuilt.

    Args:
        tokenizer: A Hugging Face tokenizer.
        d_vocab: Number of unembedding rows.
        languages: Validated language codes.
        use_cache: Read and write the cache (False: always rebuild, write nothing).

    Returns:
        (frequencies ``(d_vocab, K)`` float64, info for the options: key, path, whether it came
        from the cache).
    """
    from safetensors.torch import load_file, save_file

    langs = list(languages)
    key = _cache_key(tokenizer_fingerprint(tokenizer, d_vocab), langs)
    path = cache_root() / _CACHE_DIR / f"{key}.safetensors"
    info: dict[str, Any] = {"cache_key": key, "cache_path": str(path), "from_cache": False}
    if use_cache and path.is_file():
        try:
            freqs = load_file(str(path))["frequencies"]
            if tuple(freqs.shape) == (d_vocab, len(langs)) and bool(torch.isfinite(freqs).all()):
                info["from_cache"] = True
                return freqs, info
            logger.warning("Language-frequency cache %s has the wrong shape; rebuilding.", path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is rebuilt
            logger.warning("Language-frequency cache %s is unreadable (%s); rebuilding.", path, exc)
    freqs = token_frequencies(tokenizer, d_vocab, langs)
    if use_cache:
        meta = {"languages": ",".join(langs), "wordfreq": version("wordfreq")}
        with atomic_path(path) as tmp:
            save_file({"frequencies": freqs.contiguous()}, str(tmp), metadata=meta)
    return freqs, info
