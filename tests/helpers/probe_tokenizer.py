"""A byte-level BPE tokenizer trained in memory on the built-in probe words (no download).

Every probe word of ``multilingual-words`` (with a leading space in space-separated languages,
bare in Chinese and Japanese), the digits and the English number words one to nine become
tokens of their own, so ``hublens.check``'s tokenization checks pass on tiny models built with
it; the conftest tokenizer (400 entries) is the colliding one.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def probe_tokenizer():
    """The tokenizer (cached: training takes about a second)."""
    from hublens.data.builtin import load_builtin
    from tests.conftest import CORPUS, build_tokenizer

    words = load_builtin("multilingual-words")
    lines = list(CORPUS)
    for lang in words.types:
        sep = "" if lang in ("zh", "ja") else " "
        lines += [sep.join(words.column(lang))] * 3
    numbers = "one two three four five six seven eight nine"
    lines += [numbers, "1+2=3 4+5=9 6 7 8"] * 3
    return build_tokenizer(lines=lines, vocab_size=6000)
