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
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from hublens.data.builtin import load_builtin
    from tests.conftest import CORPUS

    words = load_builtin("multilingual-words")
    lines = list(CORPUS)
    for lang in words.types:
        sep = "" if lang in ("zh", "ja") else " "
        lines += [sep.join(words.column(lang))] * 3
    numbers = "one two three four five six seven eight nine"
    lines += [numbers, "1+2=3 4+5=9 6 7 8"] * 3
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=6000,
        special_tokens=["<pad>", "<bos>", "<eos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        add_bos_token=True,
    )
