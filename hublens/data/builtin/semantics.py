"""COGS-style sentences with logical forms, from a small grammar written for hublens.

Every sentence has exactly two proper names, so that the paper's first control (the same
logical form with the two names swapped) is always defined. Logical forms follow the
COGS notation (``verb . role ( x _ i , argument )`` conjuncts joined by ``AND``, with
``i`` the index of the verb in the whitespace-tokenised sentence), simplified as in the
hublens brief: common nouns appear inline instead of as separate ``* noun ( x _ j )``
definite-description conjuncts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ..parallel import ParallelData, ParallelDataError
from ._resources import mark_builtin

NAMES: tuple[str, ...] = (
    "Emma", "Liam", "Olivia", "Noah", "Ava", "Lucas", "Mia", "Oliver", "Sophia", "Ethan",
    "Isabella", "James", "Charlotte", "Henry", "Amelia", "Jack", "Grace", "Leo", "Chloe",
    "Daniel",
)  # fmt: skip
# (lemma, past tense, past participle)
TRANSITIVE_VERBS: tuple[tuple[str, str, str], ...] = (
    ("help", "helped", "helped"), ("see", "saw", "seen"), ("call", "called", "called"),
    ("visit", "visited", "visited"), ("admire", "admired", "admired"),
    ("thank", "thanked", "thanked"), ("follow", "followed", "followed"),
    ("praise", "praised", "praised"), ("hug", "hugged", "hugged"),
    ("push", "pushed", "pushed"), ("like", "liked", "liked"),
    ("invite", "invited", "invited"), ("find", "found", "found"),
)  # fmt: skip
DITRANSITIVE_VERBS: tuple[tuple[str, str, str], ...] = (
    ("give", "gave", "given"), ("send", "sent", "sent"), ("lend", "lent", "lent"),
    ("offer", "offered", "offered"), ("show", "showed", "shown"), ("sell", "sold", "sold"),
    ("hand", "handed", "handed"), ("bring", "brought", "brought"),
    ("pass", "passed", "passed"), ("throw", "threw", "thrown"),
)  # fmt: skip
OBJECTS: tuple[str, ...] = (
    "cake", "book", "ball", "letter", "cookie", "box", "flower", "hat", "key", "map",
    "pencil", "apple", "cup", "ticket", "ring", "toy", "sandwich", "drink",
)  # fmt: skip
ROLES: tuple[str, ...] = ("agent", "theme", "recipient")
TEMPLATES: tuple[str, ...] = (
    "transitive_active",
    "transitive_passive",
    "ditransitive_pp",
    "ditransitive_double_object",
    "ditransitive_passive_theme",
    "ditransitive_passive_recipient",
)
# position of the verb in the whitespace-tokenised sentence of each template (COGS's x _ i)
_VERB_INDEX = {
    "transitive_active": 1,  # Emma helped Liam .
    "transitive_passive": 2,  # Liam was helped by Emma .
    "ditransitive_pp": 1,  # Emma gave the cake to Liam .
    "ditransitive_double_object": 1,  # Emma gave Liam the cake .
    "ditransitive_passive_theme": 3,  # The cake was given to Liam by Emma .
    "ditransitive_passive_recipient": 2,  # Liam was given the cake by Emma .
}
LF_TYPES: tuple[str, ...] = (
    "sentence",
    "logical_form",
    "lf_names_swapped",
    "lf_conjuncts_shuffled",
)


def _conjunct(verb: str, role: str, index: int, argument: str) -> str:
    return f"{verb} . {role} ( x _ {index} , {argument} )"


def _generate(template: str, rng: random.Random) -> tuple[str, list[tuple[str, str]], str]:
    """Returns (sentence, [(role, argument), ...] in LF order, verb lemma)."""
    a, b = rng.sample(NAMES, 2)
    if template.startswith("transitive"):
        lemma, past, participle = rng.choice(TRANSITIVE_VERBS)
        if template == "transitive_active":
            return f"{a} {past} {b} .", [("agent", a), ("theme", b)], lemma
        return f"{b} was {participle} by {a} .", [("theme", b), ("agent", a)], lemma
    lemma, past, participle = rng.choice(DITRANSITIVE_VERBS)
    obj = rng.choice(OBJECTS)
    if template == "ditransitive_pp":
        sentence = f"{a} {past} the {obj} to {b} ."
        return sentence, [("agent", a), ("theme", obj), ("recipient", b)], lemma
    if template == "ditransitive_double_object":
        sentence = f"{a} {past} {b} the {obj} ."
        return sentence, [("agent", a), ("recipient", b), ("theme", obj)], lemma
    if template == "ditransitive_passive_theme":
        sentence = f"The {obj} was {participle} to {b} by {a} ."
        return sentence, [("theme", obj), ("recipient", b), ("agent", a)], lemma
    sentence = f"{b} was {participle} the {obj} by {a} ."
    return sentence, [("recipient", b), ("theme", obj), ("agent", a)], lemma


def swap_names(logical_form: str, first: str, second: str) -> str:
    """Returns ``logical_form`` with every token ``first`` and ``second`` exchanged."""
    swap = {first: second, second: first}
    return " ".join(swap.get(token, token) for token in logical_form.split(" "))


def shuffle_conjuncts(logical_form: str, rng: random.Random) -> str:
    """Returns the conjuncts of ``logical_form`` in a random order different from the original.

    Raises:
        ParallelDataError: If the form has fewer than two distinct conjuncts.
    """
    conjuncts = logical_form.split(" AND ")
    if len(set(conjuncts)) < 2:
        raise ParallelDataError(
            f"cannot shuffle {logical_form!r}: it needs at least two distinct conjuncts."
        )
    shuffled = list(conjuncts)
    while shuffled == conjuncts:
        rng.shuffle(shuffled)
    return " AND ".join(shuffled)


@lru_cache(maxsize=8)
def _semantics_records(n: int, seed: int) -> tuple[dict[str, Any], ...]:
    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    seen: set[str] = set()
    attempts = 0
    while len(records) < n:
        attempts += 1
        if attempts > 100 * n:  # pragma: no cover - the grammar has far more sentences
            raise ParallelDataError(f"could not generate {n} distinct sentences.")
        template = TEMPLATES[len(records) % len(TEMPLATES)]
        sentence, arguments, lemma = _generate(template, rng)
        if sentence in seen:
            continue
        seen.add(sentence)
        tokens = sentence.split(" ")
        verb_index = _VERB_INDEX[template]
        logical_form = " AND ".join(
            _conjunct(lemma, role, verb_index, argument) for role, argument in arguments
        )
        names = [arg for _, arg in arguments if arg in NAMES]
        in_order = sorted(names, key=tokens.index)
        records.append(
            {
                "id": f"cogs-{len(records):04d}",
                "sentence": sentence,
                "logical_form": logical_form,
                "lf_names_swapped": swap_names(logical_form, names[0], names[1]),
                "lf_conjuncts_shuffled": shuffle_conjuncts(logical_form, rng),
                "meta": {
                    "template": template,
                    "verb": lemma,
                    "names": in_order,
                    "name_roles": {arg: role for role, arg in arguments if arg in NAMES},
                    "name_offsets": {name: _word_offset(tokens, name) for name in in_order},
                },
            }
        )
    return tuple(records)


def _word_offset(tokens: Sequence[str], word: str) -> int:
    index = tokens.index(word)
    return sum(len(token) + 1 for token in tokens[:index])


def cogs_semantics(n: int = 300, *, seed: int = 0) -> ParallelData:
    """Returns ``n`` COGS-style sentences with logical forms and the paper's two controls.

    Types: ``"sentence"`` (``"Emma gave the cake to Liam ."``), ``"logical_form"``,
    ``"lf_names_swapped"`` (the two proper names exchanged) and ``"lf_conjuncts_shuffled"``
    (conjuncts in a different order). Meta: ``template``, ``verb`` (lemma), ``names`` (in
    sentence order), ``name_roles`` (name to ``agent``/``theme``/``recipient``) and
    ``name_offsets`` (character offset of each name in the sentence, so that
    ``sentence[:offset]`` is the prefix read before the name in the role logit lens).

    Args:
        n: Number of items; the six templates are used in turn.
        seed: Seed of the ``random.Random`` generator; the output depends only on it and n.

    Raises:
        ParallelDataError: If ``n < 1``.
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ParallelDataError(f"cogs_semantics(): n must be a positive int, got {n!r}.")
    data = ParallelData.from_records(list(_semantics_records(n, seed)), name="semantics")
    return mark_builtin(data, "semantics")
