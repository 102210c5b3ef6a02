"""The arithmetic intervention: steer "r=o+" towards the answer of "r=(o+1)+".

For a prompt ``"5=3+"`` (the answer is 2), the vector is the difference of the hidden states
at the last position of two English prompts, ``"five equals to four plus"`` minus
``"five equals to three plus"``, read at one layer and added, times a strength, at the last
position of ``"5=3+"`` at the SAME layer (the authors' code extracts at L and adds at L + 1; we
do not copy that off-by-one). Decoding is greedy; the answer is the leading number of the
continuation.

Outcomes per item and strength, against the model's own unsteered answer ``a0``:

* ``correct``: the steered answer is ``a0 - 1`` (moved by the intended amount);
* ``unchanged``: it is ``a0``;
* ``other``: anything else (another number, or no number).

Also reported: ``is_target`` (the steered answer equals r - o - 1, the true answer of the
modified problem) and ``is_sum`` (it equals r - o). Seeds draw the items: seed s samples
``n_items`` additions with ``random.Random(s)``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from tqdm.auto import tqdm

from hublens.hooks import LastToken
from hublens.steering.checks import (
    DEFAULT_SEEDS,
    DEFAULT_STRENGTHS,
    check_count,
    check_layer,
    check_seeds,
    check_strengths,
)
from hublens.steering.generate import generate_rows
from hublens.steering.result import SteeringResult, SteeringRow, provenance_of
from hublens.steering.vectors import hidden_at

NAME = "arithmetic"
METRICS = ["correct", "unchanged", "other", "is_target", "is_sum"]
_NUMBER = re.compile(r"\s*(\d+)")


@dataclass(frozen=True)
class ArithmeticItem:
    """One "r=o+" problem.

    Attributes:
        result: r.
        other: o.
    """

    result: int
    other: int

    @property
    def prompt(self) -> str:
        """The numeral prompt, e.g. ``"5=3+"``."""
        return f"{self.result}={self.other}+"

    @property
    def answer(self) -> int:
        """R - o."""
        return self.result - self.other


@lru_cache(maxsize=1)
def _engine() -> Any:
    import inflect

    return inflect.engine()


@lru_cache(maxsize=256)
def _words(number: int) -> str:
    return str(_engine().number_to_words(str(number)))


def english_pair(item: ArithmeticItem) -> tuple[str, str]:
    """(towards, away) English prompts: "⟨r⟩ equals to ⟨o+1⟩ plus", "⟨r⟩ equals to ⟨o⟩ plus"."""
    r = _words(item.result)
    return (
        f"{r} equals to {_words(item.other + 1)} plus",
        f"{r} equals to {_words(item.other)} plus",
    )


def arithmetic_pool(*, max_result: int = 20) -> list[ArithmeticItem]:
    """Additions o + t = r of the paper's data with t >= 2 (so r - o - 1 >= 1), r <= max_result."""
    from hublens.data.builtin.arithmetic import arithmetic_problems

    items = []
    for op, other, target, result in arithmetic_problems():
        if op == "+" and target >= 2 and result <= max_result:
            items.append(ArithmeticItem(result, other))
    return items


def parse_answer(text: str) -> int | None:
    """The leading number of a continuation (``"2+4"`` -> 2, ``" 10="`` -> 10), else None."""
    match = _NUMBER.match(text)
    return int(match.group(1)) if match else None


def classify(steered: int | None, unsteered: int | None) -> str:
    """``"correct"`` (moved down by one), ``"unchanged"`` or ``"other"``."""
    if steered is not None and unsteered is not None and steered == unsteered - 1:
        return "correct"
    if steered == unsteered:
        return "unchanged"
    return "other"


@torch.no_grad()
def arithmetic_vectors(
    model: Any, items: Sequence[ArithmeticItem], *, layer: int, batch_size: int = 16
) -> torch.Tensor:
    """``(n, d_model)``: per item, h(towards) - h(away) at the last token of the English pair."""
    out = []
    for start in range(0, len(items), batch_size):
        part = items[start : start + batch_size]
        texts = [t for item in part for t in english_pair(item)]
        batch = model.tokenize(texts)
        hidden = hidden_at(model, batch.ids, layer, "resid_post", LastToken(batch.lengths))
        out.append(hidden[0::2] - hidden[1::2])
    return torch.cat(out, dim=0)


def run_arithmetic_intervention(
    model: Any,
    *,
    layer: int | None = None,
    strengths: Iterable[Any] = DEFAULT_STRENGTHS,
    seeds: Iterable[Any] = DEFAULT_SEEDS,
    n_items: int = 24,
    max_result: int = 20,
    max_new_tokens: int = 3,
    context: str = "",
    progress: bool = True,
) -> SteeringResult:
    """Steer "r=o+" prompts with English "o -> o+1" vectors; count Correct/Unchanged/Other.

    Args:
        model: A HubModel.
        layer: Layer to extract and add at (default: the middle layer, ``n_layers // 2``).
        strengths: Strength grid (default 0 to 3 by 0.5); 0 is always run as the reference.
        seeds: Seeds; each draws ``n_items`` problems.
        n_items: Problems per seed.
        max_result: Largest r used.
        max_new_tokens: Greedy tokens generated per prompt.
        context: Text put before every "r=o+" prompt (e.g. solved examples, one per line); the
            vector still goes to the last position. Empty (the paper's setting) by default.
        progress: Show a progress bar.

    Returns:
        A :class:`SteeringResult`; ``summary()`` gives mean ± std over seeds.

    Raises:
        ValueError / TypeError: Bad layer, strengths, seeds or sizes.

    Example:
        >>> result = run_arithmetic_intervention(model, n_items=8)  # doctest: +SKIP
        >>> print(result.to_markdown())  # doctest: +SKIP
    """
    grid = check_strengths(strengths)
    seed_list = check_seeds(seeds)
    check_count("n_items", n_items)
    check_count("max_result", max_result, 3)
    check_count("max_new_tokens", max_new_tokens)
    if not isinstance(context, str):
        raise TypeError(f"context={context!r}: pass a string ('' for none).")
    layer = check_layer(model, model.n_layers // 2 if layer is None else layer)
    if any(s < 0 for s in grid):
        raise ValueError(f"strengths={grid}: this intervention uses strengths >= 0.")
    run_grid = [0.0] + [s for s in grid if s != 0.0]

    pool = arithmetic_pool(max_result=max_result)
    if n_items > len(pool):
        raise ValueError(f"n_items={n_items}: only {len(pool)} problems have r <= {max_result}.")
    samples = {seed: random.Random(seed).sample(pool, n_items) for seed in seed_list}
    unique = list(dict.fromkeys(item for items in samples.values() for item in items))

    vectors = arithmetic_vectors(model, unique, layer=layer)
    scales = torch.tensor(run_grid, dtype=vectors.dtype)
    answers: dict[tuple[ArithmeticItem, float], int | None] = {}
    texts: dict[tuple[ArithmeticItem, float], str] = {}
    for i, item in enumerate(tqdm(unique, desc="arithmetic", disable=not progress)):
        ids = model.tokenize(context + item.prompt).ids[0]
        rows = (scales[:, None] * vectors[i][None, :])[:, None, :]  # (strengths, 1, d_model)
        new = generate_rows(
            model,
            ids,
            rows,
            [len(ids) - 1],
            layer=layer,
            site="resid_post",
            max_new_tokens=max_new_tokens,
        )
        for s, row in zip(run_grid, new, strict=False):
            text = model.tokenizer.decode(row.tolist())
            texts[(item, s)] = text
            answers[(item, s)] = parse_answer(text)

    result_rows = []
    for seed, items in samples.items():
        for s in run_grid:
            if s not in grid:
                continue
            counts = dict.fromkeys(METRICS, 0)
            for item in items:
                steered, base = answers[(item, s)], answers[(item, 0.0)]
                counts[classify(steered, base)] += 1
                counts["is_target"] += steered == item.answer - 1
                counts["is_sum"] += steered == item.answer
            for metric in METRICS:
                result_rows.append(
                    SteeringRow(NAME, "", s, seed, metric, counts[metric] / len(items), len(items))
                )
    examples = []
    for item in unique[:6]:
        shown = ", ".join(f"s={s:g}: {texts[(item, s)]!r}" for s in run_grid)
        examples.append(f"{item.prompt} (true {item.answer}, target {item.answer - 1}) -> {shown}")
    return SteeringResult(
        NAME,
        result_rows,
        provenance=provenance_of(model),
        options={
            "layer": layer,
            "site": "resid_post (extracted and added at the same layer)",
            "position": "last prompt position, prompt pass only",
            "vector": "h('<r> equals to <o+1> plus') - h('<r> equals to <o> plus'), English words",
            "strengths": grid,
            "seeds": seed_list,
            "seed_meaning": "seed s samples n_items problems with random.Random(s)",
            "n_items": n_items,
            "context": context,
            "max_result": max_result,
            "decoding": f"greedy, {max_new_tokens} new tokens, leading number parsed",
            "outcomes": "correct = steered answer is the unsteered answer - 1; unchanged = same; "
            "other = anything else; is_target = r-o-1; is_sum = r-o",
        },
        examples=examples,
        metrics=METRICS,
    )
