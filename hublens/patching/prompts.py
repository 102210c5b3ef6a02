"""Few-shot translation prompts in the Wendler format, and the checks on a word table.

A prompt translating item ``i`` from language ``a`` to ``b`` holds ``few_shot`` demonstration
pairs taken from OTHER items and ends right after the answer's opening quote, exactly as
:class:`hublens.analyses.TranslationLens` writes it::

    Français: "chien" - English: "dog"
    Français: "chat" - English: "cat"
    Français: "fleur" - English: "

Demonstrations are the items after ``i`` in table order (cyclically) that share no word with
any of the items to keep out (the source and the target concept of a patching pair), so no
prompt shows either answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hublens.data import ParallelData

__all__ = ["check_languages", "demo_items", "language_name", "translation_prompt"]


def language_name(code: str, overrides: Mapping[str, str], argument: str) -> str:
    """The name a prompt gives language ``code`` (in the language itself, as Wendler et al.).

    Raises:
        ValueError: No name is known; the message says how to give one.
    """
    from hublens.analyses.translation_lens import LANGUAGE_NAMES  # the one table of names

    names = {**LANGUAGE_NAMES, **overrides}
    if code not in names:
        raise ValueError(
            f"{argument}={code!r} has no prompt name; pass language_names={{{code!r}: "
            f"'<name>'}} (known: {', '.join(sorted(names))})."
        )
    return names[code]


def check_languages(data: ParallelData, languages: Mapping[str, str]) -> None:
    """Every language (argument name -> code) must be a column of the word table.

    Raises:
        ValueError: Naming the argument, the missing code and the table's columns.
    """
    for argument, code in languages.items():
        if code not in data.types:
            raise ValueError(
                f"{argument}={code!r} is not a language of the word table {data.name!r} "
                f"(its columns: {', '.join(data.types)}); pick one of those."
            )


def demo_items(
    data: ParallelData, start: int, keep_out: Sequence[int], few_shot: int, columns: Sequence[str]
) -> list[int]:
    """Indices of ``few_shot`` demonstration items for a prompt about item ``start``.

    Args:
        data: The word table.
        start: The prompt's own item (demonstrations are the items after it, cyclically).
        keep_out: Items whose words no demonstration may share (in any of ``columns``).
        few_shot: How many demonstrations.
        columns: The languages the prompts use.

    Returns:
        The indices.

    Raises:
        ValueError: The table has too few other items.
    """
    banned = {data.column(c)[k] for k in keep_out for c in columns}
    out: list[int] = []
    for step in range(1, len(data)):
        if len(out) == few_shot:
            break
        j = (start + step) % len(data)
        if j in keep_out or banned & {data.column(c)[j] for c in columns}:
            continue
        out.append(j)
    if len(out) < few_shot:
        raise ValueError(
            f"few_shot={few_shot}: the word table {data.name!r} has only {len(out)} items that "
            "share no word with the patched concepts; lower few_shot or add items."
        )
    return out


def translation_prompt(
    data: ParallelData,
    item: int,
    demos: Sequence[int],
    source: str,
    target: str,
    names: Mapping[str, Any],
) -> str:
    """The few-shot prompt translating ``item`` from ``source`` to ``target``.

    Args:
        data: The word table.
        item: The item to translate.
        demos: Demonstration items (see :func:`demo_items`).
        source: Input language (a column).
        target: Output language (a column).
        names: Language code -> prompt name.

    Returns:
        The prompt, ending right after the answer's opening quote.
    """
    src, tgt = data.column(source), data.column(target)
    lines = [f'{names[source]}: "{src[j]}" - {names[target]}: "{tgt[j]}"' for j in demos]
    return "\n".join([*lines, f'{names[source]}: "{src[item]}" - {names[target]}: "'])
