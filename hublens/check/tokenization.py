"""Tokenization of the built-in probe words: what the first-token policy can tell apart.

The lens probes read a word by its first token (``HubModel.word_token_ids``, the leading
space made explicit: words of space-separated languages with one, Chinese and Japanese
without). Per language of ``multilingual-words`` this measures the words that split into several
tokens and the words whose first token another word shares (the lens cannot tell them apart);
per item, the dominant-language word against each other language's (different) word; and the
arithmetic probe's answers 1-9 as numerals (no space, after ``+``) and as number words (with
one).

Fail (the probes' numbers would be wrong): more than :data:`MAX_SHARED` of the dominant
language's words share a first token, more than :data:`MAX_SHARED` of items have a
dominant-language word that shares its first token with another language's word, or two
arithmetic answers (or an answer's numeral and word) share one. Warn: another language with
more than :data:`MAX_SHARED` shared first tokens (e.g. Chinese on an English-centric byte-level
BPE, whose first token is a byte prefix of many characters): its lens probabilities mix words.
"""

from __future__ import annotations

from collections import defaultdict

from hublens.check.context import CheckContext
from hublens.check.result import CheckResult, Status

#: Largest fraction of probe words (or items) allowed to share a first token.
MAX_SHARED = 0.10
#: Scripts written without spaces: their words are read without a leading space.
NO_SPACE_LANGUAGES = frozenset({"zh", "ja"})


def _shared(words: list[str], first: list[int]) -> list[str]:
    """Words whose first token a different word of the list shares."""
    owners: dict[int, set[str]] = defaultdict(set)
    for word, token in zip(words, first, strict=True):
        owners[token].add(word)
    return [w for w, t in zip(words, first, strict=True) if len(owners[t]) > 1]


def _word_ids(model, words: list[str], *, leading_space: bool) -> list[list[int]]:
    """``model.word_token_ids`` of each word, in one batched tokenizer call when that is equal."""
    if model.convention.auto_prefix_space and not leading_space:
        return [model.word_token_ids(w, leading_space=False) for w in words]
    texts = [(" " + w) if leading_space else w for w in words]
    encoded: list[list[int]] = model.tokenizer(
        texts, add_special_tokens=False, return_attention_mask=False
    )["input_ids"]
    return encoded


#: The arithmetic probe's answers 1-9 as ``inflect`` spells them (the probe's own speller).
NUMBER_WORDS: tuple[str, ...] = (
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)


def probe_words(ctx: CheckContext) -> list[CheckResult]:
    """Convention, per-language shared first tokens and splits, cross-language collisions."""
    from hublens.data.builtin import load_builtin

    model = ctx.model
    convention = model.convention
    results = [
        CheckResult(
            "tokens.convention",
            "pass" if convention.space_marker else "warn",
            detail=f"space marker {convention.space_marker!r}, "
            f"auto prefix space {convention.auto_prefix_space}"
            + ("" if convention.space_marker else ": none found, ' word' may tokenize oddly"),
            data={
                "space_marker": convention.space_marker,
                "auto_prefix_space": convention.auto_prefix_space,
            },
        )
    ]
    data = load_builtin("multilingual-words")
    languages = list(data.types)
    dominant = model.dominant_language if model.dominant_language in languages else languages[0]
    words = {lang: data.column(lang) for lang in languages}
    ids = {
        lang: _word_ids(model, words[lang], leading_space=lang not in NO_SPACE_LANGUAGES)
        for lang in languages
    }
    first = {lang: [t[0] if t else -1 for t in ids[lang]] for lang in languages}
    for lang in [dominant, *(x for x in languages if x != dominant)]:
        shared = _shared(words[lang], first[lang])
        n = len(words[lang])
        frac = len(shared) / n
        split = sum(len(t) > 1 for t in ids[lang]) / n
        status: Status = "pass" if frac <= MAX_SHARED else ("fail" if lang == dominant else "warn")
        results.append(
            CheckResult(
                f"tokens.first_shared.{lang}",
                status,
                frac,
                MAX_SHARED,
                "fraction",
                f"{len(shared)}/{n} {lang} words share a first token; {split:.0%} split"
                + (" (dominant language)" if lang == dominant else ""),
                {"split_fraction": split, "examples": shared[:8]},
            )
        )
    collide: list[str] = []
    for i in range(len(data)):
        own = first[dominant][i]
        for lang in languages:
            other = words[lang][i]
            if (
                lang != dominant
                and first[lang][i] == own
                and other.lower() != words[dominant][i].lower()
            ):
                collide.append(f"{words[dominant][i]}/{other}")
                break
    results.append(
        CheckResult.bounded(
            "tokens.cross_language",
            len(collide) / len(data),
            MAX_SHARED,
            unit="fraction",
            detail=f"{len(collide)}/{len(data)} items: the {dominant} word shares its first token "
            "with another language's word",
            examples=collide[:8],
        )
    )
    results.append(_numerals(model))
    return results


def _numerals(model) -> CheckResult:
    answers = range(1, 10)  # the arithmetic probe's lens answers
    numerals = [model.word_token_ids(str(n), leading_space=False) for n in answers]
    spelled = [model.word_token_ids(NUMBER_WORDS[n - 1]) for n in answers]
    firsts = [t[0] for t in numerals] + [t[0] for t in spelled]
    collisions = len(firsts) - len(set(firsts))
    return CheckResult.bounded(
        "tokens.numerals",
        collisions,
        0,
        unit="collisions",
        detail=f"answers 1-9: numerals split {sum(len(t) > 1 for t in numerals)}/9, number "
        f"words split {sum(len(t) > 1 for t in spelled)}/9; shared first tokens",
        numeral_tokens=[t[:3] for t in numerals],
        word_tokens=[t[:3] for t in spelled],
    )
