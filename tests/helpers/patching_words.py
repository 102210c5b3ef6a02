"""A tiny user word table for the patching tests (first tokens distinct when tokenized)."""

from __future__ import annotations


def tiny_word_table():
    """Four concepts in en, fr, de, zh and es, as a ParallelData named ``tiny-words``."""
    from hublens.data import ParallelData

    records = [
        {"id": "dog", "en": "dog", "fr": "chien", "de": "Hund", "zh": "狗", "es": "perro"},
        {"id": "cat", "en": "cat", "fr": "chat", "de": "Katze", "zh": "猫", "es": "gato"},
        {"id": "flower", "en": "flower", "fr": "fleur", "de": "Blume", "zh": "花", "es": "flor"},
        {"id": "mat", "en": "mat", "fr": "tapis", "de": "Matte", "zh": "垫", "es": "alfombra"},
    ]
    return ParallelData.from_records(records, name="tiny-words")
