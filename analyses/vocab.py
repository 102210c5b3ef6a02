"""Vocabulary helpers shared by the lens analyses: token texts and a tokenizer fingerprint."""

from __future__ import annotations

import hashlib
import re
from typing import Any

#: SentencePiece byte-fallback tokens, e.g. ``<0xE4>``.
_BYTE_TOKEN = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
#: Markup tokens such as ``</footer>`` or ``<td>``: never words.
_MARKUP = re.compile(r"^<[^<>]*>$")


def excluded_token_ids(tokenizer: Any) -> set[int]:
    """Ids that can never stand for a word: special and added tokens (control, markup).

    Args:
        tokenizer: A Hugging Face tokenizer.

    Returns:
        The ids.
    """
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", [])}
    ids.update(int(i) for i in getattr(tokenizer, "added_tokens_decoder", {}))
    return ids


def token_texts(tokenizer: Any, d_vocab: int) -> list[str | None]:
    """The word each vocabulary entry writes, or None where it writes no word.

    The text is the token decoded on its own (so the leading-space marker ``"▁"``/``"Ġ"``
    becomes a space), stripped of surrounding whitespace. None is returned for: special and
    added tokens, SentencePiece byte-fallback tokens (``<0x..>``), tokens that decode to an
    incomplete UTF-8 sequence (containing U+FFFD), markup tokens (``<...>``), whitespace-only
    tokens, and rows of the unembedding beyond the tokenizer's vocabulary (padding rows).

    Args:
        tokenizer: A Hugging Face tokenizer.
        d_vocab: Number of unembedding rows (may exceed the tokenizer's length).

    Returns:
        One entry per unembedding row.
    """
    n = min(len(tokenizer), d_vocab)
    excluded = excluded_token_ids(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    out: list[str | None] = []
    for i, piece in enumerate(pieces):
        if i in excluded or piece is None or _BYTE_TOKEN.match(piece):
            out.append(None)
            continue
        text = tokenizer.decode([i]).strip()
        if not text or "\ufffd" in text or _MARKUP.match(text):
            out.append(None)
        else:
            out.append(text)
    out.extend([None] * (d_vocab - n))
    return out


def tokenizer_fingerprint(tokenizer: Any, d_vocab: int) -> str:
    """A sha256 over what defines the token texts: the token strings, added ids, d_vocab.

    Args:
        tokenizer: A Hugging Face tokenizer.
        d_vocab: Number of unembedding rows.

    Returns:
        Hex digest.
    """
    n = len(tokenizer)
    digest = hashlib.sha256()
    digest.update(f"{type(tokenizer).__name__}|{n}|{d_vocab}|".encode())
    digest.update(",".join(map(str, sorted(excluded_token_ids(tokenizer)))).encode())
    digest.update(b"|")
    pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    digest.update("\x1f".join("" if p is None else p for p in pieces).encode("utf-8"))
    return digest.hexdigest()
