"""The code intervention: make ``range(`` calls take an explicit start argument.

Items are real Python from the standard library: every call ``range(x)`` with exactly one
positional argument (no keywords) gives a prefix that ends right after ``range(`` (the same
extraction rules as :mod:`hublens.data.builtin.code`: the prefix starts at the first line of
the outermost enclosing statement that fits ``max_prefix_chars``). The vector is
``W_U["start"] - W_U["end"]`` (first tokens, read without a leading space, as they follow
``(``), scaled to unit norm and then to the norm of each prompt's own residual stream at the
steered position, so a strength s adds s times that norm. It is added at the last prompt
position (the ``(``), prompt pass only; decoding is greedy.

Outcomes per item and strength (the argument text is the continuation up to the ``)`` that
closes ``range(``, or all of it if none does):

* ``unchanged``: the same argument text as the unsteered continuation;
* ``correct``: otherwise, the unsteered continuation had ONE argument and the steered one has
  two or more (the steering added an explicit start);
* ``other``: anything else.

``start_added`` counts every continuation with two or more arguments, whatever the unsteered
one did: this is the paper's "Correct" measured against the original one-argument source, and
at strength 0 it is the model's own rate of writing a start argument. ``says_start`` counts
argument texts that contain the word itself (case-insensitive), which tells a literal copy of
the token from a semantic start argument.
Seeds draw the items from the pool with ``random.Random(seed)``.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from tqdm.auto import tqdm

from hublens.data.builtin.code import (
    _iter_sources,
    _parents,
    _prefix_start,
    _skip,
    stdlib_root,
)
from hublens.hooks import LastToken
from hublens.steering.checks import (
    DEFAULT_SEEDS,
    check_count,
    check_layer,
    check_seeds,
    check_strengths,
)
from hublens.steering.generate import generate_rows
from hublens.steering.result import SteeringResult, SteeringRow, provenance_of
from hublens.steering.vectors import hidden_at, unembedding_vector

NAME = "code"
METRICS = ["correct", "unchanged", "other", "start_added", "says_start"]
#: Strengths in units of the residual norm (the norm saturates the effect well below 1).
CODE_STRENGTHS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)


@dataclass(frozen=True)
class RangeItem:
    """A ``range(x)`` call site.

    Attributes:
        code: The source prefix, ending with ``range(``.
        arg: The original single argument's source text.
        file: The file, relative to the standard library root.
        offset: Character offset of the prefix's end in that file.
    """

    code: str
    arg: str
    file: str
    offset: int


@lru_cache(maxsize=4)
def range_calls(
    max_items: int = 200, *, per_file: int = 2, max_prefix_chars: int = 400
) -> tuple[RangeItem, ...]:
    """One-argument ``range(...)`` calls in the standard library, files in sorted order.

    Args:
        max_items: Most items.
        per_file: Most items from one file.
        max_prefix_chars: Longest prefix.

    Returns:
        The items (the exact set depends on the Python version).
    """
    items: list[RangeItem] = []
    for source in _iter_sources(stdlib_root()):
        parents = _parents(source.tree)
        calls = [
            n
            for n in ast.walk(source.tree)
            if isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and n.func.id == "range"
            and len(n.args) == 1
            and not n.keywords
            and not isinstance(n.args[0], ast.Starred)
            and n.lineno == n.end_lineno
        ]
        calls.sort(key=lambda n: (n.lineno, n.col_offset))
        taken = 0
        for call in calls:
            if taken >= per_file or len(items) >= max_items:
                break
            _, name_end = source.span(call.func)
            paren = _skip(source.text, name_end, " \t")
            if paren >= len(source.text) or source.text[paren] != "(":
                continue
            end = paren + 1
            start = _prefix_start(source, call, parents, end, max_prefix_chars)
            if start is None:
                continue
            arg_start, arg_end = source.span(call.args[0])
            items.append(
                RangeItem(
                    source.text[start:end], source.text[arg_start:arg_end], source.relpath, end
                )
            )
            taken += 1
        if len(items) >= max_items:
            break
    return tuple(items)


def argument_text(continuation: str) -> tuple[str, int]:
    r"""The text inside ``range(`` up to its closing ``)``, and its number of arguments.

    Brackets and string quotes are tracked, so ``len(a, b))`` is one argument and
    ``0, len(a))`` two. Without a closing ``)`` the whole continuation counts.

    Example:
        >>> argument_text("0, len(a)):\\n")
        ('0, len(a)', 2)
    """
    depth, quote, commas, i = 0, "", 0, 0
    while i < len(continuation):
        ch = continuation[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            commas += 1
        i += 1
    text = continuation[:i].strip()
    n_args = 0 if not text else commas + 1 - (1 if text.endswith(",") else 0)
    return text, n_args


def classify(steered: str, unsteered: str) -> str:
    """``"unchanged"``, ``"correct"`` (one argument unsteered, two or more now) or ``"other"``."""
    text, n_args = argument_text(steered)
    base_text, base_args = argument_text(unsteered)
    if text == base_text:
        return "unchanged"
    return "correct" if n_args >= 2 and base_args == 1 else "other"


def run_code_intervention(
    model: Any,
    *,
    layer: int | None = None,
    strengths: Iterable[Any] = CODE_STRENGTHS,
    seeds: Iterable[Any] = DEFAULT_SEEDS,
    n_items: int = 12,
    pool_size: int = 120,
    max_prefix_chars: int = 300,
    max_new_tokens: int = 8,
    towards: str = "start",
    away: str = "end",
    progress: bool = True,
) -> SteeringResult:
    """Steer ``range(`` prefixes with ``W_U[start] - W_U[end]``; count added start arguments.

    Args:
        model: A HubModel.
        layer: Layer to add at (default: the middle layer, ``n_layers // 2``).
        strengths: Strengths in units of the residual norm at the steered position.
        seeds: Seeds; each draws ``n_items`` call sites from the pool.
        n_items: Call sites per seed.
        pool_size: Call sites extracted from the standard library.
        max_prefix_chars: Longest code prefix.
        max_new_tokens: Greedy tokens generated.
        towards: Word whose unembedding the vector points to.
        away: Word it points away from.
        progress: Show a progress bar.

    Returns:
        A :class:`SteeringResult`.

    Raises:
        ValueError / TypeError: Bad layer, strengths, seeds or sizes.

    Example:
        >>> result = run_code_intervention(model, n_items=4, seeds=[0])  # doctest: +SKIP
    """
    grid = check_strengths(strengths)
    seed_list = check_seeds(seeds)
    check_count("n_items", n_items)
    check_count("pool_size", pool_size)
    check_count("max_prefix_chars", max_prefix_chars, 16)
    check_count("max_new_tokens", max_new_tokens)
    layer = check_layer(model, model.n_layers // 2 if layer is None else layer)
    run_grid = [0.0] + [s for s in grid if s != 0.0]
    direction = unembedding_vector(
        model, towards, away, layer=layer, leading_space=False, normalize="unit"
    )

    pool = list(range_calls(pool_size, max_prefix_chars=max_prefix_chars))
    if n_items > len(pool):
        raise ValueError(f"n_items={n_items}: the pool holds only {len(pool)} range( calls.")
    samples = {seed: random.Random(seed).sample(pool, n_items) for seed in seed_list}
    unique = list(dict.fromkeys(item for items in samples.values() for item in items))

    texts: dict[tuple[RangeItem, float], str] = {}
    norms = []
    for item in tqdm(unique, desc="code", disable=not progress):
        ids = model.tokenize(item.code).ids
        norm = float(hidden_at(model, ids, layer, "resid_post", LastToken()).norm())
        norms.append(norm)
        scales = torch.tensor(run_grid) * norm
        rows = (scales[:, None] * direction.vector[None, :])[:, None, :]
        new = generate_rows(
            model,
            ids[0],
            rows,
            [ids.shape[1] - 1],
            layer=layer,
            site="resid_post",
            max_new_tokens=max_new_tokens,
        )
        for s, row in zip(run_grid, new, strict=False):
            texts[(item, s)] = model.tokenizer.decode(row.tolist(), skip_special_tokens=True)

    result_rows = []
    for seed, items in samples.items():
        for s in grid:
            counts = dict.fromkeys(METRICS, 0)
            for item in items:
                counts[classify(texts[(item, s)], texts[(item, 0.0)])] += 1
                text, n_args = argument_text(texts[(item, s)])
                counts["start_added"] += n_args >= 2
                counts["says_start"] += towards.lower() in text.lower()
            for metric in METRICS:
                result_rows.append(
                    SteeringRow(NAME, "", s, seed, metric, counts[metric] / len(items), len(items))
                )
    examples = []
    for item in unique[:6]:
        shown = " | ".join(f"s={s:g}: {texts[(item, s)]!r}" for s in run_grid)
        examples.append(
            f"{item.file}: ...{item.code[-60:]!r} (original arg {item.arg!r}) -> {shown}"
        )
    return SteeringResult(
        NAME,
        result_rows,
        provenance={**provenance_of(model), "python_stdlib": str(stdlib_root())},
        options={
            "layer": layer,
            "site": "resid_post",
            "position": "last prompt position (the '('), prompt pass only",
            "vector": f"unit(W_U[{towards!r}] - W_U[{away!r}]) x residual norm at that position",
            "tokens": direction.meta["tokens"],
            "mean_residual_norm": sum(norms) / len(norms),
            "strengths": grid,
            "seeds": seed_list,
            "seed_meaning": "seed s samples n_items call sites with random.Random(s)",
            "n_items": n_items,
            "pool_size": len(pool),
            "max_prefix_chars": max_prefix_chars,
            "decoding": f"greedy, {max_new_tokens} new tokens",
            "outcomes": "unchanged = same argument text as unsteered; correct = otherwise, "
            "1 argument unsteered and >= 2 steered; other = rest; start_added = >= 2 "
            "arguments; says_start = the argument text contains the word",
        },
        examples=examples,
        metrics=METRICS,
    )
