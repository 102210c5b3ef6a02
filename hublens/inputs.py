"""Check every text of a scan before its first forward pass: length bound and non-empty tokens.

A scan tokenizes each batch just before running it, so a text that is too long (or that
tokenizes to nothing) in the last batch would otherwise be found after every other forward.
:func:`check_scan_inputs` tokenizes every distinct text once, up front, and refuses the first
bad one with an error that names the data item (id and type) or the analysis that built the
prompt. With every row at most ``max_tokens`` tokens, a forward holds at most
``batch_size x max_tokens`` tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hublens.model import HubModel, _preview

#: Texts encoded per tokenizer call by the check (bounds its own memory too).
_CHUNK = 256


def check_scan_inputs(
    model: HubModel,
    data: Any,
    analyses: Sequence[Any],
    query_lists: Sequence[Sequence[Any]],
    *,
    max_tokens: int | None = None,
) -> None:
    """Refuse, before any forward, a scan text that is too long or has no tokens.

    The data's own texts are checked first (an error names the item's index, id and type),
    then the prompts the analyses built from them (an error names the analysis and query).

    Args:
        model: The model (its tokenizer, BOS policy and context).
        data: The ParallelData scanned.
        analyses: The analyses, in order.
        query_lists: Each analysis's queries (objects with a ``text``).
        max_tokens: Longest row allowed, BOS included; None: the model's context.

    Raises:
        TextTooLongError: A text has more tokens than the limit.
        NoTokensError: A text has no tokens.
        ValueError: ``max_tokens`` is not a positive int or exceeds the context.

    Example:
        >>> check_scan_inputs(model, data, analyses, query_lists, max_tokens=512)  # doctest: +SKIP
    """
    model.token_limit(max_tokens)  # a bad max_tokens is reported before any text
    labels: dict[str, str] = {}
    for index, (item_id, item) in enumerate(zip(data.ids, data.items, strict=True)):
        for data_type in data.types:
            labels.setdefault(
                item[data_type],
                f"item {index} (id {item_id!r}) of data {data.name!r}, type {data_type!r}",
            )
    for analysis, queries in zip(analyses, query_lists, strict=True):
        for number, query in enumerate(queries):
            text = getattr(query, "text", None)
            if isinstance(text, str) and text and text not in labels:
                labels[text] = (
                    f"the prompt {_preview(text)} (query {number} of analysis {analysis.name!r})"
                )
    texts = list(labels)
    for start in range(0, len(texts), _CHUNK):
        chunk = texts[start : start + _CHUNK]

        def describe(i: int, chunk: list[str] = chunk) -> str:
            return _describe(labels, chunk[i])

        model.encode_rows(chunk, max_tokens=max_tokens, describe=describe)


def _describe(labels: dict[str, str], text: str) -> str:
    label = labels[text]
    return label if label.startswith("the prompt") else f"{label}: {_preview(text)}"
