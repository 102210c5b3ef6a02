"""Independent transcription of Wendler et al.'s translation lens on plain transformers.

No hublens import.

Source: github.com/epfl-dlab/llm-latent-language at commit d0e4f29, ``Translation.ipynb`` (code
cells 1, 9-12 and 15) and ``llamawrapper.py`` (``BlockOutputWrapper``); re-written, not copied.

The method: word rows (English word, input-language word, target-language word); rows whose
English word occurs inside the target word are dropped; for every row, 4 demonstrations are
drawn at random (seeded numpy, ``k=5`` with the query last) from the other rows; the prompt
``Français: "x" - 中文: "y"\\n`` x4 + ``Français: "fleur" - 中文: "`` is read at its last token
at the output of every block through ``lm_head(final_norm(h))``; p(target) and p(English) are
SUMS of the probabilities of every token in the word's prefix set. Rows whose two prefix sets
are empty or overlap at all are skipped (after their demonstrations were drawn, so the random
stream advances for them too).

Not reproducible offline: the models (Llama-2 7B/13B/70B in 8-bit) and the exact row order of
``data/langs/*/clean.csv`` (the files are in the repository; a caller may pass them in).
Generalised beyond the source: the source's vocabulary lookups assume Llama-2's SentencePiece
strings (``▁`` and ``<0xXX>``); :func:`vocab_form` also maps GPT-2-style byte-level vocabularies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

#: ``lang2name`` of ``Translation.ipynb`` cell 11.
LANG_NAMES = {"fr": "Français", "de": "Deutsch", "ru": "Русский", "en": "English", "zh": "中文"}


@lru_cache(maxsize=1)
def _byte_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character map (the byte-level BPE alphabet)."""
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def is_byte_level(tokenizer) -> bool:
    """Whether the vocabulary is GPT-2-style byte-level (``Ġ`` marks a space) rather than
    SentencePiece-style like the source's Llama-2 (``▁`` marks a space, ``<0xXX>`` bytes).

    Remembered on the tokenizer object, with its size (the answer scans the whole vocabulary:
    262k entries for Gemma, asked once per candidate string)."""
    known = getattr(tokenizer, "_reference_byte_level", None)
    if known is None or known[0] != len(tokenizer):
        known = (len(tokenizer), _scan_byte_level(tokenizer))
        tokenizer._reference_byte_level = known
    return known[1]


def _scan_byte_level(tokenizer) -> bool:
    vocab = tokenizer.get_vocab()
    if "<0x41>" in vocab or any(t.startswith("▁") for t in vocab):
        return False
    return any(t.startswith("Ġ") for t in vocab)


def vocab_form(tokenizer, candidate: str) -> str:
    """A source candidate string (``▁`` = leading space) as this vocabulary spells it.

    SentencePiece vocabularies: unchanged (the source looks the string up as is). Byte-level
    vocabularies: the UTF-8 bytes in GPT-2's alphabet, ``▁`` -> ``Ġ``.
    """
    if not is_byte_level(tokenizer):
        return candidate
    chars = _byte_chars()
    return "".join(chars[b] for b in candidate.replace("▁", " ").encode("utf-8"))


def first_byte_token(tokenizer, word: str) -> int | None:
    """Id of the token for the first UTF-8 byte of ``word`` that Python's bytes repr escapes as
    ``\\x..`` (for a Chinese word: its first byte), or None when the vocabulary has none.

    Transcribes ``unicode_prefix_tokid`` (cell 10): ``word.encode().__str__()[2:-1]
    .split('\\\\x')[1]`` -> ``<0xXX>``. An all-ASCII word makes the source raise (IndexError);
    here it gives None. On a byte-level vocabulary the byte's alphabet character is looked up.
    """
    escaped = [
        b
        for b in word.encode("utf-8")
        if b >= 0x80 or (b < 0x20 and b not in (9, 10, 13)) or b == 0x7F
    ]
    if not escaped:
        return None
    vocab = tokenizer.get_vocab()
    key = _byte_chars()[escaped[0]] if is_byte_level(tokenizer) else f"<0x{escaped[0]:02X}>"
    return vocab.get(key)


def prefix_token_ids(tokenizer, word: str, lang: str) -> list[int]:
    """Wendler's token set of a word: every vocabulary entry equal to a character prefix of the
    word, with or without a leading space marker; for ``lang`` in ``zh``/``ru`` also the token of
    the word's first UTF-8 byte. No other byte-fallback token (an English word's ``<0x66>`` is
    never in its set).

    Transcribes ``token_prefixes``, ``add_spaces``, ``capitalizations`` (a de-duplication, no
    case variants despite its name) and ``process_tokens`` (cell 10).
    """
    prefixes = [word[:i] for i in range(1, len(word) + 1)]
    with_spaces = ["▁" + p for p in prefixes] + prefixes
    vocab = tokenizer.get_vocab()
    ids = []
    for candidate in sorted(set(with_spaces)):  # the source's order is a set's: irrelevant
        piece = vocab_form(tokenizer, candidate)
        if piece in vocab:
            ids.append(vocab[piece])
    if lang in ("zh", "ru"):
        byte_id = first_byte_token(tokenizer, word)
        if byte_id is not None:
            ids.append(byte_id)
    return ids


@dataclass(frozen=True)
class Row:
    """One word row: the English word, the input-language word, the target-language word."""

    en: str
    src: str
    tgt: str


def drop_contained(rows: Sequence[Row], target_lang: str) -> list[Row]:
    """Drop rows whose English word occurs (case-insensitively) inside the target word.

    Transcribes cell 9 (``if row['en'].lower() in row[target_lang].lower(): drop``), applied
    only when the target language is not English.
    """
    if target_lang == "en":
        return list(rows)
    return [r for r in rows if r.en.lower() not in r.tgt.lower()]


def sample_prompt(
    rows: Sequence[Row],
    ind: int,
    rng: np.random.RandomState,
    tokenizer,
    *,
    lang1: str,
    lang2: str,
    k: int = 5,
) -> dict | None:
    """The few-shot prompt of row ``ind`` (k-1 random demonstrations, then the query), or None.

    Demonstrations are ``rng.choice(n - 1, k - 1, replace=False)`` positions among the other
    rows in order, exactly what ``DataFrame.sample(k - 1)`` draws from numpy's global
    RandomState. None when either prefix set is empty, or (target not English) they overlap.
    Transcribes ``sample`` (cell 11; its generator is read once with ``next``).
    """
    others = [r for i, r in enumerate(rows) if i != ind]
    picks = rng.choice(len(others), size=k - 1, replace=False)
    a, b = LANG_NAMES[lang1], LANG_NAMES[lang2]
    prompt = "".join(f'{a}: "{others[j].src}" - {b}: "{others[j].tgt}"\n' for j in picks)
    row = rows[ind]
    prompt += f'{a}: "{row.src}" - {b}: "'
    out_ids = prefix_token_ids(tokenizer, row.tgt, lang2)
    latent_ids = prefix_token_ids(tokenizer, row.en, "en")
    if not out_ids or not latent_ids:
        return None
    if lang2 != "en" and set(out_ids) & set(latent_ids):
        return None
    return {"prompt": prompt, "out_token_id": out_ids, "latent_token_id": latent_ids, "row": row}


def build_dataset(
    rows: Sequence[Row], tokenizer, *, input_lang: str, target_lang: str, seed: int = 42, k: int = 5
) -> list[dict]:
    """Cells 1 (``np.random.seed(42)``), 9 (drop contained rows) and 12 (one prompt per row)."""
    rows = drop_contained(rows, target_lang)
    rng = np.random.RandomState(seed)
    out = []
    for ind in range(len(rows)):
        d = sample_prompt(rows, ind, rng, tokenizer, lang1=input_lang, lang2=target_lang, k=k)
        if d is not None:
            out.append(d)
    return out


@torch.no_grad()
def block_outputs(
    model, tokenizer, prompt: str, *, add_special_tokens: bool = True
) -> torch.Tensor:
    """(layer, pos, d) raw output of every decoder block (``BlockOutputWrapper.output``), the
    prompt tokenized with the tokenizer's defaults (BOS for Llama-2; ``LlamaHelper.get_logits``)."""
    captured: list[torch.Tensor] = []
    hooks = [
        layer.register_forward_hook(
            lambda m, a, o: captured.append(o[0] if isinstance(o, tuple) else o)
        )
        for layer in model.model.layers
    ]
    try:
        model(
            tokenizer(prompt, return_tensors="pt", add_special_tokens=add_special_tokens).input_ids
        )
    finally:
        for h in hooks:
            h.remove()
    return torch.stack([c[0] for c in captured]).float()


@torch.no_grad()
def last_token_probs(model, tokenizer, prompt: str) -> np.ndarray:
    """(layer, vocab) ``softmax(lm_head(norm(h)))`` at the last token, fp32 (cell 15, with
    ``unemb = nn.Sequential(model.model.norm, model.lm_head)`` of cell 7). The last layer equals
    the model's own next-token distribution (the source's Llama has no soft-capping)."""
    h = block_outputs(model, tokenizer, prompt)[:, -1, :]
    logits = model.get_output_embeddings()(model.model.norm(h))
    return torch.softmax(logits.float(), dim=-1).numpy()


@torch.no_grad()
def normed_logprobs(model, tokenizer, text: str, *, add_special_tokens: bool = True) -> np.ndarray:
    """(layer, pos, vocab) ``log_softmax(lm_head(norm(h)))`` of every block output, fp32.

    Wendler's lens (cell 7) at every position; the analyses Wendler has no code for use it with
    the semantic hub paper's data handling (the same signature as ``semantic_hub.hidden_logprobs``).
    """
    h = block_outputs(model, tokenizer, text, add_special_tokens=add_special_tokens)
    logits = model.get_output_embeddings()(model.model.norm(h))
    return torch.log_softmax(logits.float(), dim=-1).numpy()


def translation_lens(model, tokenizer, dataset: Sequence[dict]) -> dict[str, np.ndarray]:
    """(n, layer) p(English latent word) and p(target word): summed over each prefix set (cell 15).

    Returns:
        ``latent`` and ``out`` (n, layer); ``latent_mean``, ``out_mean`` (layer,).
    """
    latent, out = [], []
    for d in dataset:
        p = last_token_probs(model, tokenizer, d["prompt"])
        latent.append(p[:, d["latent_token_id"]].sum(-1))
        out.append(p[:, d["out_token_id"]].sum(-1))
    lat, tgt = np.stack(latent), np.stack(out)
    return {"latent": lat, "out": tgt, "latent_mean": lat.mean(0), "out_mean": tgt.mean(0)}
