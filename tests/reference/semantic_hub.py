"""Independent transcription of the Semantic Hub paper's code on plain transformers (no hublens).

Source: github.com/ZhaofengWu/semantic-hub at commit d386fe7 ("Minor import fix"), read with
``git show``; the computations are re-written here, not copied. Every function names the file
and line range it transcribes and what cannot be reproduced offline. The running-text lens is in
``semantic_hub_running_text.py``.

Shared conventions of the source (``lib/logit_lens.py``):
* A text is tokenized with the tokenizer's defaults (``add_special_tokens=True``: BOS where the
  tokenizer adds one) and run ONCE, unbatched, with ``output_hidden_states=True``.
* Layer i (0-based) is ``hidden_states[i + 1]``: the embedding output is dropped. The last entry
  is transformers' ``last_hidden_state``, i.e. the model's FINAL-NORMED output state; the others
  are raw residual streams (no norm).
* The lens is ``h @ W_U.T`` (``get_output_embeddings().weight``: no bias, no final-logit
  soft-capping, no norm) followed by an fp32 ``log_softmax``.

Not reproducible offline: the data (GALE zh-en, Wikipedia, C4, MBPP, COGS), the models
(Llama-2/3) and the C4 token counts (see :func:`token_counts_from_texts`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import torch

# ---- shared ---------------------------------------------------------------------------------


@torch.no_grad()
def hidden_states(model, tokenizer, text: str, *, add_special_tokens: bool = True) -> np.ndarray:
    """(layer, pos, d) hidden states of one text, the last layer normed (float32).

    Transcribes ``lib/logit_lens.py`` 46-52 (``get_emb_and_hidden_states``) with the ``[1:]``
    the callers apply (``multilingual/similarity.py`` 74, ``lib/logit_lens.py`` 59).
    """
    ids = tokenizer(text, add_special_tokens=add_special_tokens, return_tensors="pt").input_ids
    out = model(ids, output_hidden_states=True).hidden_states
    return torch.stack([h[0] for h in out[1:]]).float().numpy()


@torch.no_grad()
def hidden_logprobs(model, tokenizer, text: str, *, add_special_tokens: bool = True) -> np.ndarray:
    """(layer, pos, vocab) lens log-probs: ``log_softmax(h @ W_U.T)`` in fp32, no norm.

    Transcribes ``lib/logit_lens.py`` 55-66 (``get_hidden_logprobs``). The last layer is the
    normed output state, so it equals the model's own log-probs (absent soft-capping or bias).
    """
    states = torch.from_numpy(
        hidden_states(model, tokenizer, text, add_special_tokens=add_special_tokens)
    )
    w_u = model.get_output_embeddings().weight.detach().float()
    return torch.log_softmax(states @ w_u.T, dim=-1).numpy()


def first_token_id(tokenizer, s: str, *, add_prefix_space: bool, style: str = "llama-3") -> int:
    """The id standing for a word: its first token, the leading space made explicit.

    Transcribes ``lib/logit_lens.py`` 115-129 (``first_token_id_for_string``). ``style="llama-3"``
    (explicit ``" " + s``) is the branch that fits tokenizers that add no space of their own
    (Llama-3, Gemma, GPT-2-style byte-level); ``"llama-2"`` is the SentencePiece branch (the
    tokenizer adds ``▁`` itself; without a space the word is read after ``"*"``). The source
    asserts on any other model name.
    """
    if style == "llama-3":
        return tokenizer((" " if add_prefix_space else "") + s, add_special_tokens=False)[
            "input_ids"
        ][0]
    if style == "llama-2":
        if add_prefix_space:
            return tokenizer(s, add_special_tokens=False)["input_ids"][0]
        star = tokenizer("*", add_special_tokens=False)["input_ids"][0]
        ids = tokenizer("*" + s, add_special_tokens=False)["input_ids"]
        if ids[0] != star:
            raise AssertionError(f"'*' + {s!r} does not start with the '*' token")
        return ids[1]
    raise ValueError(f"style={style!r}: 'llama-3' or 'llama-2'")


# ---- similarity (multilingual/similarity.py, lib/utils.py) ---------------------------------


def add_cues(zh_texts: Sequence[str], en_texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Append the continuation cues: ``"这代表了"`` after ``"。"``, ``"This represents"`` after
    ``"."`` or ``'."'`` (no leading space); other texts are left as they are.

    Transcribes ``multilingual/similarity.py`` 54-69 (``augment_data``).
    """
    zh = [t + "这代表了" if t.endswith("。") else t for t in zh_texts]
    en = [t + "This represents" if t.endswith(".") or t.endswith('."') else t for t in en_texts]
    return zh, en


def cosine_matrix(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(n_x, n_y, layer) cosines of every x_i with every y_j, per layer; x, y: (n, layer, d).

    Transcribes ``lib/utils.py`` 120-144 (``batched_cosine_similarity``; torch's
    ``F.cosine_similarity`` clamps each norm at 1e-8, which never binds for real states).
    """
    xt = torch.from_numpy(np.ascontiguousarray(x)).float()
    yt = torch.from_numpy(np.ascontiguousarray(y)).float()
    return torch.nn.functional.cosine_similarity(xt[:, None], yt[None], dim=-1).numpy()


def global_baseline(cos: np.ndarray) -> np.ndarray:
    """(layer,) mean over ALL i != j of cos_ij (``lib/utils.py`` 148-153)."""
    n = cos.shape[0]
    diag_sum = sum(cos[i, i] for i in range(n))
    return (cos.sum(axis=(0, 1)) - diag_sum) / (n * (n - 1))


def baseline_adjusted(cos: np.ndarray) -> np.ndarray:
    """(layer, n) per-item Eq. 1 values: ``cos_ii - mean over ALL i != j of cos_ij``.

    The baseline is ONE number per layer (the global off-diagonal mean), not a per-item mean
    over j. Transcribes ``lib/utils.py`` 147-154 (``baseline_adjusted_cosine_similarity``).
    """
    diag = np.stack([cos[i, i] for i in range(cos.shape[0])], axis=1)  # (layer, n)
    return diag - global_baseline(cos)[:, None]


def last_token_states(model, tokenizer, texts: Iterable[str]) -> np.ndarray:
    """(n, layer, d) last-token states, last layer normed (``multilingual/similarity.py`` 72-76)."""
    return np.stack([hidden_states(model, tokenizer, t)[:, -1, :] for t in texts])


def similarity(
    model, tokenizer, en_texts: Sequence[str], zh_texts: Sequence[str], *, cues: bool = True
) -> dict[str, np.ndarray]:
    """The paper's EN-ZH similarity: cues, last-token states, Eq. 1 with the global baseline.

    Transcribes ``multilingual/similarity.py`` 79-103 (``main``): English states are the rows
    (x), the other language's the columns (y); the printed number is the per-layer mean.

    Returns:
        ``per_item`` (layer, n), ``mean`` (layer,), ``baseline`` (layer,), ``cos`` (n, n, layer).
    """
    zh, en = add_cues(zh_texts, en_texts) if cues else (list(zh_texts), list(en_texts))
    cos = cosine_matrix(
        last_token_states(model, tokenizer, en), last_token_states(model, tokenizer, zh)
    )
    per_item = baseline_adjusted(cos)
    return {
        "per_item": per_item,
        "mean": per_item.mean(1),
        "baseline": global_baseline(cos),
        "cos": cos,
    }


# ---- arithmetic (arithmetic/logit_lens.py, arithmetic/similarity.py) -----------------------


def arithmetic_items() -> list[tuple[str, int, int, int]]:
    """(op, other, target, result): ``result = other + target`` (846) and ``other * target``
    with product < 100 (277), targets 1..9. Transcribes ``arithmetic/logit_lens.py`` 18-31."""
    data = []
    for target in range(1, 10):
        data += [("+", other, target, other + target) for other in range(1, 100 - target)]
        data += [("*", o, target, o * target) for o in range(1, math.ceil(100 / target))]
    return data


def number_word(n: int) -> str:
    """``inflect``'s English spelling of ``n`` (the source's ``number_to_words``)."""
    import inflect

    return str(inflect.engine().number_to_words(n))


def arithmetic_lens(
    model,
    tokenizer,
    items: Sequence[tuple[str, int, int, int]],
    *,
    style: str = "llama-3",
    lens=None,
) -> dict[str, np.ndarray]:
    """Per-item, per-layer log p(numeral) and log p(" word") at the last token of ``"r=o+"``.

    Prompt ``f"{result}={other}{op}"`` with the tokenizer's BOS; numeral without a space, number
    word with one; no norm (last layer normed). Transcribes ``arithmetic/logit_lens.py`` 53-79
    (the cache is not transcribed; the printed numbers are the means over items). ``lens``
    replaces :func:`hidden_logprobs` (e.g. ``wendler.normed_logprobs``).

    Returns:
        ``numeral`` and ``word``: (n, layer); ``numeral_mean``, ``word_mean``: (layer,).
    """
    num, word = [], []
    for op, other, target, result in items:
        logp = (lens or hidden_logprobs)(model, tokenizer, f"{result}={other}{op}")
        n_id = first_token_id(tokenizer, str(target), add_prefix_space=False, style=style)
        w_id = first_token_id(tokenizer, number_word(target), add_prefix_space=True, style=style)
        num.append(logp[:, -1, n_id])
        word.append(logp[:, -1, w_id])
    numeral, words = np.stack(num), np.stack(word)
    return {
        "numeral": numeral,
        "word": words,
        "numeral_mean": numeral.mean(0),
        "word_mean": words.mean(0),
    }


def arithmetic_pair_texts(
    items: Sequence[tuple[str, int, int, int]],
) -> tuple[list[str], list[str]]:
    """``"3+2"`` and ``"three plus two"`` (``*`` -> ``times``), no cue; ``arithmetic/similarity.py``
    38-43."""
    op_word = {"+": "plus", "*": "times"}
    numbers = [f"{other}{op}{target}" for op, other, target, _ in items]
    texts = [
        f"{number_word(other)} {op_word[op]} {number_word(target)}"
        for op, other, target, _ in items
    ]
    return numbers, texts


def arithmetic_groups(
    cos: np.ndarray, items: Sequence[tuple[str, int, int, int]]
) -> dict[str, np.ndarray]:
    """Exact match / same result / different result / Diff, per layer, from (n, n, layer) cosines.

    Transcribes ``arithmetic/similarity.py`` 44-109. "Same result" pairs include the diagonal
    (i == j has the same result and op), and so does the baseline of "Diff" (the mean over ALL
    pairs, not over i != j).
    """
    results = np.array([r for *_, r in items])
    same = results[:, None] == results[None, :]
    diag = np.stack([cos[i, i] for i in range(len(items))], axis=1)  # (layer, n)
    return {
        "exact_match": diag.mean(1),
        "same_result": cos[same].mean(0),
        "different_result": cos[~same].mean(0),
        "diff": (diag - cos.reshape(-1, cos.shape[2]).mean(0)[:, None]).mean(1),
    }


# ---- language probability (multilingual/global_language_trends.py, compute_...py) ----------


def token_counts_from_texts(
    tokenizer, texts_by_language: Mapping[str, Sequence[str]], languages: Sequence[str]
) -> np.ndarray:
    """(K, vocab_size) token counts per language from ``tokenizer.tokenize`` of each text.

    Transcribes the counting of ``multilingual/compute_tokenizer_language_probabilities.py``
    144-158 (``compute_distribution``) and the id lookup of 161-171. The source counts 100,000
    C4 documents per language for 101 languages (``load_language``, 123-141), which cannot be
    downloaded here: offline, any per-language corpus is passed in instead (e.g. the data's own
    texts, or sentences built from ``wordfreq`` lists), and the table can also be passed straight
    to :func:`language_given_token`. The table has ``tokenizer.vocab_size`` columns (as the
    source: added tokens beyond it get no column).
    """
    counts = np.zeros((len(languages), tokenizer.vocab_size), dtype=np.float64)
    for k, lang in enumerate(languages):
        c: Counter[str] = Counter()
        for text in texts_by_language[lang]:
            c.update(tokenizer.tokenize(text))
        for piece, n in c.items():
            counts[k, tokenizer.convert_tokens_to_ids(piece)] += n
    return counts


def language_given_token(counts: np.ndarray) -> np.ndarray:
    """(K, V) ``p(lang | v) = p(v | lang) / sum_l p(v | l)`` under a uniform prior; 1/K where no
    language has the token (every column sums to 1).

    ``p(v | lang)`` is ``count / total`` per language (log space in the source). Transcribes
    ``compute_tokenizer_language_probabilities.py`` 157, 161-178 (``masked_log_softmax`` over
    the language axis) and ``global_language_trends.py`` 76-78 (zero where unseen, then 1/K for
    columns no language has).
    """
    counts = np.asarray(counts, dtype=np.float64)
    k = counts.shape[0]
    p_token = counts / counts.sum(1, keepdims=True)  # p(v | lang)
    total = p_token.sum(0, keepdims=True)
    seen = total > 0
    return np.where(seen, p_token / np.where(seen, total, 1.0), 1.0 / k)


@torch.no_grad()
def language_probabilities(
    model, tokenizer, texts: Sequence[str], lang_probs: np.ndarray, *, lens=None
) -> np.ndarray:
    """(layer, K) ``sum over texts and positions of p(lang | h) / total positions``.

    Every position of every text counts once (BOS included: its lens distribution is read like
    any other; a token of no language spreads 1/K over the languages), so long texts weigh more;
    no norm (last layer normed). If the lens vocabulary exceeds the table's, the lens
    probabilities are cut to the table's columns and renormalised. Transcribes
    ``multilingual/global_language_trends.py`` 51-113 (``calculate_log_prob`` with
    ``report_and_return`` 33-48; entropies are not transcribed). ``lens`` replaces
    :func:`hidden_logprobs`.
    """
    table = torch.from_numpy(np.asarray(lang_probs, dtype=np.float32))
    total = None
    n_tokens = 0
    for text in texts:
        p = torch.from_numpy((lens or hidden_logprobs)(model, tokenizer, text)).exp()  # (L,T,V)
        if p.shape[-1] > table.shape[-1]:
            p = p[..., : table.shape[-1]]
            p = p / p.sum(-1, keepdim=True)
        q = (p @ table.T).sum(1)  # (L, K)
        total = q if total is None else total + q
        n_tokens += p.shape[1]
    if total is None:
        raise ValueError("texts is empty")
    return (total / n_tokens).numpy()
