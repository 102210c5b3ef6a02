"""Hand-written multilingual word and sentence lists (written by the hublens authors)."""

from __future__ import annotations

from ..parallel import ParallelData
from ._resources import load_packaged_jsonl

WORD_LANGUAGES: tuple[str, ...] = ("en", "zh", "fr", "de", "es", "ja")
SENTENCE_LANGUAGES: tuple[str, ...] = ("en", "zh", "fr", "es", "de")


def multilingual_words() -> ParallelData:
    """Returns concrete concept words in English, Chinese, French, German, Spanish, Japanese.

    Each item's id is its English word; ``meta["pos"]`` is ``"noun"``, ``"adjective"`` or
    ``"verb"``. Chinese is in simplified characters; Japanese uses the script most usual
    for the word; German nouns are capitalised; no articles anywhere.
    """
    return load_packaged_jsonl("multilingual_words.jsonl", name="multilingual-words")


def multilingual_sentences() -> ParallelData:
    """Returns short everyday parallel sentences in English, Chinese, French, Spanish, German.

    Ids are ``"s001"``, ``"s002"``, ...; every sentence has a distinct meaning.
    """
    return load_packaged_jsonl("multilingual_sentences.jsonl", name="multilingual-sentences")
