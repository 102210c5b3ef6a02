"""Word-to-token policies of the logit-lens probes: which vocabulary ids stand for a word.

* ``"first"`` (the paper's): the word's first token, with the leading space made explicit per
  probe (a word right after an opening quote, a numeral after ``+``, or an argument right
  after ``(`` is read without a space; a number word, a role word, or an argument after
  ``", "`` with one), through :meth:`HubModel.word_token_ids`.
* ``"prefix_sum"`` (Wendler et al., 2024): the summed probability of every vocabulary id whose
  decoded text, stripped of one leading space (the tokenizer's space marker), is a non-empty
  prefix of the word, plus, for a word of a language written in a non-Latin script
  (:data:`BYTE_PREFIX_LANGUAGES`), the token of its first UTF-8 byte; byte-fallback tokens
  (``<0x66>``, which decodes to ``"f"``) never count otherwise, as in Wendler's sets. The id
  sets are computed once per word. The log of the sum is reported.
"""

from __future__ import annotations

import re
import weakref
from typing import Any

__all__ = [
    "BYTE_PREFIX_LANGUAGES",
    "TOKEN_POLICIES",
    "check_token_policy",
    "first_byte_token",
    "prefix_token_ids",
    "target_token_ids",
]

#: The word-to-token policies.
TOKEN_POLICIES: tuple[str, ...] = ("first", "prefix_sum")

#: Languages whose prefix sets get the word's first UTF-8 byte token (Wendler et al.: zh, ru;
#: hublens adds the other non-Latin scripts it names prompts for).
BYTE_PREFIX_LANGUAGES: tuple[str, ...] = ("zh", "ru", "ja", "ko")

_BYTE_PIECE = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")

# tokenizer -> (vocabulary size indexed, {decoded text stripped of one leading space: ids})
_PREFIX_INDEX: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, list[int]]]] = (
    weakref.WeakKeyDictionary()
)


def _prefix_index(model: Any) -> dict[str, list[int]]:
    """Decoded vocabulary, grouped by text without its leading space (cached per tokenizer)."""
    tokenizer = model.tokenizer
    size = min(len(tokenizer), int(model.d_vocab))
    cached = _PREFIX_INDEX.get(tokenizer)
    if cached is not None and cached[0] == size:
        return cached[1]
    special = set(tokenizer.all_special_ids)
    texts = tokenizer.batch_decode([[i] for i in range(size)])
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    index: dict[str, list[int]] = {}
    for token_id, text in enumerate(texts):
        if token_id in special or _BYTE_PIECE.match(str(pieces[token_id])):
            continue  # byte-fallback pieces are no prefix (Wendler matches vocabulary strings)
        stripped = text[1:] if text.startswith(" ") else text
        if stripped:
            index.setdefault(stripped, []).append(token_id)
    _PREFIX_INDEX[tokenizer] = (size, index)
    return index


def _byte_char(byte: int) -> str:
    """GPT-2's byte-level alphabet: printable bytes map to themselves, the rest to 256 + n."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    if byte in printable:
        return chr(byte)
    return chr(256 + [b for b in range(256) if b not in printable].index(byte))


def first_byte_token(model: Any, word: str) -> int | None:
    """Id of the token of ``word``'s first non-ASCII (or control) UTF-8 byte, or None.

    SentencePiece vocabularies spell it ``<0xE8>``; byte-level BPE vocabularies (GPT-2 style)
    as that byte's character of the byte alphabet. None when there is no such byte or token.
    """
    escaped = [b for b in word.encode("utf-8") if b >= 0x7F or (b < 0x20 and b not in (9, 10, 13))]
    if not escaped:
        return None
    tokenizer = model.tokenizer
    vocab = tokenizer.get_vocab()
    piece = f"<0x{escaped[0]:02X}>"
    if piece not in vocab and model.convention.space_marker == "\u0120":
        piece = _byte_char(escaped[0])
    token_id = vocab.get(piece)
    return None if token_id is None or token_id >= int(model.d_vocab) else int(token_id)


def prefix_token_ids(model: Any, word: str, language: str | None = None) -> tuple[int, ...]:
    """Ids of every vocabulary entry whose decoded text is a non-empty prefix of ``word``.

    The decoded text of each id is stripped of one leading space (the tokenizer's space marker)
    first, so ``"▁flo"`` and ``"flo"`` both count for ``"flower"`` (Wendler et al., 2024).
    Special tokens and byte-fallback tokens never count, except that a word of a language in
    :data:`BYTE_PREFIX_LANGUAGES` gets its first UTF-8 byte token (:func:`first_byte_token`),
    the first step of spelling it byte by byte.

    Args:
        model: A HubModel (its tokenizer and ``d_vocab`` are used).
        word: The word, non-empty.
        language: The word's language (a code such as ``"zh"``), or None.

    Returns:
        The sorted ids (possibly empty).

    Raises:
        ValueError: ``word`` is empty.
    """
    if not word:
        raise ValueError("word='': pass a non-empty word.")
    index = _prefix_index(model)
    ids: set[int] = set()
    for stop in range(1, len(word) + 1):
        ids.update(index.get(word[:stop], ()))
    if language in BYTE_PREFIX_LANGUAGES:
        byte_id = first_byte_token(model, word)
        if byte_id is not None:
            ids.add(byte_id)
    return tuple(sorted(ids))


def target_token_ids(
    model: Any,
    word: str,
    *,
    leading_space: bool,
    policy: str = "first",
    language: str | None = None,
) -> tuple[int, ...]:
    """The vocabulary ids whose probability stands for ``word`` under a token policy.

    Args:
        model: A HubModel.
        word: The word, without surrounding whitespace.
        leading_space: Whether the word follows a space where it is read (policy ``"first"``
            only: ``"prefix_sum"`` strips the space marker and so covers both forms).
        policy: ``"first"`` (the first token) or ``"prefix_sum"`` (every prefix token).
        language: The word's language (``"prefix_sum"`` only, see :func:`prefix_token_ids`).

    Returns:
        One id for ``"first"``, the prefix ids for ``"prefix_sum"``.

    Raises:
        ValueError: Unknown policy, or the word yields no token.
    """
    check_token_policy(policy)
    if policy == "first":
        ids = tuple(model.word_token_ids(word, leading_space=leading_space)[:1])
    else:
        if not word or word != word.strip():
            raise ValueError(f"word={word!r}: pass the bare word without surrounding whitespace.")
        ids = prefix_token_ids(model, word, language)
    if not ids:
        raise ValueError(
            f"word={word!r} yields no token under token_policy={policy!r}; fix or drop the word "
            "(or try the other policy)."
        )
    return ids


def check_token_policy(policy: str | None) -> None:
    """Raise a ValueError naming the valid policies unless ``policy`` is one of them."""
    if policy not in TOKEN_POLICIES:
        raise ValueError(
            f"token_policy={policy!r}: choose one of {', '.join(map(repr, TOKEN_POLICIES))}."
        )
