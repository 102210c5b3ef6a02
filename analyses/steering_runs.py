"""Shared machinery of the steering interventions: batched steered generation, strength checks.

An intervention needs the same prompt generated under many steering vectors (strengths,
vector sources, seeds). :func:`generate_rows` runs them as rows of ONE batch of copies of the
prompt (no padding, so each row equals the prompt run alone), each row with its own
already-scaled vector, prompt-only, through TransformerLens's KV-cached ``generate``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hublens.hooks.names import Site
from hublens.hooks.steer_rows import row_steering_hooks
from hublens.steering import generate

#: The paper's strength grid: 0 to 3 by 0.5.
DEFAULT_STRENGTHS: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
#: Default seeds.
DEFAULT_SEEDS: tuple[int, ...] = (0, 1, 2)
#: Most (rows x positions) one forward holds: bounds the full-vocabulary logits in memory.
MAX_ROW_TOKENS = 1536


def check_strengths(strengths: Iterable[Any]) -> list[float]:
    """Validate a strength grid: finite numbers, at least one, 0 included first if present.

    Raises:
        TypeError: A strength is not a number (strings such as ``"2"`` included).
        ValueError: The grid is empty or holds NaN / infinity.
    """
    if isinstance(strengths, (str, bytes)):
        raise TypeError(f"strengths={strengths!r}: pass a list of numbers, e.g. [0, 0.5, 1].")
    values = list(strengths)
    if not values:
        raise ValueError("strengths=[]: pass at least one strength, e.g. [0, 0.5, 1].")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"strengths contains {value!r} ({type(value).__name__}); strengths are numbers."
            )
        if not math.isfinite(float(value)):
            raise ValueError(f"strengths contains {value!r}; strengths must be finite.")
        out.append(float(value))
    return list(dict.fromkeys(out))


def check_seeds(seeds: Iterable[Any]) -> list[int]:
    """Validate seeds: at least one int.

    Raises:
        TypeError: A seed is not an int.
        ValueError: No seed.
    """
    values = list(seeds)
    if not values:
        raise ValueError("seeds=[]: pass at least one seed, e.g. [0, 1, 2].")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"seeds contains {value!r}; seeds are ints.")
    return list(dict.fromkeys(values))


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """Validate a positive size option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r}: pass an int >= {minimum}.")
    return value


@torch.no_grad()
def generate_rows(
    model: Any,
    prompt_ids: Int[Tensor, "1 pos"] | Int[Tensor, " pos"],
    vectors: Float[Tensor, "rows k d_model"],
    positions: Sequence[int],
    *,
    layer: int,
    site: Site,
    max_new_tokens: int,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> Int[Tensor, "rows new"]:
    """Generate one prompt under one steering vector per row, prompt-only.

    Rows go through the model in chunks whose size bounds ``rows x positions`` by
    :data:`MAX_ROW_TOKENS`; with sampling, each chunk is sampled under its own seed
    (``seed + chunk index``) so results do not depend on anything but the arguments.

    Args:
        model: A HubModel.
        prompt_ids: The prompt's token ids (with BOS where the model uses one).
        vectors: ``(rows, k, d_model)`` already-scaled vectors; a zero row is the unsteered run.
        positions: The k prompt positions the vectors go to.
        layer: The layer to add at.
        site: The residual-stream site.
        max_new_tokens: Tokens to generate per row.
        do_sample: Sample (seeded) instead of greedy decoding.
        temperature: Sampling temperature.
        top_k: Sample from the k most likely tokens only.
        seed: Sampling seed.

    Returns:
        ``(rows, max_new_tokens)`` generated token ids.
    """
    ids = prompt_ids.reshape(1, -1)
    pos = ids.shape[1]
    chunk = max(1, MAX_ROW_TOKENS // (pos + max_new_tokens))
    out = []
    for c, start in enumerate(range(0, len(vectors), chunk)):
        part = vectors[start : start + chunk]
        hooks = row_steering_hooks(model, part, positions, layers=layer, prompt_len=pos, site=site)
        out.append(
            generate(
                model,
                ids.expand(len(part), -1),
                hooks=hooks,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                temperature=temperature,
                top_k=top_k,
                seed=None if seed is None else seed + c,
            )
        )
    return torch.cat(out, dim=0)


def provenance_of(model: Any) -> dict[str, Any]:
    """Model provenance for a result (the HubModel's, plus its BOS policy)."""
    provenance = getattr(model, "provenance", None)
    facts = provenance.to_dict() if provenance is not None else {"name": type(model).__name__}
    return {"model": facts, "prepend_bos": bool(getattr(model, "prepend_bos", True))}
