"""Steered generation: one prompt under hooks, or under one steering vector per batch row.

:func:`generate` runs greedy (or seeded sampled) generation under the given hooks; hooks built
with ``prompt_len`` steer the prompt pass only, so KV-cached and uncached greedy generation give
the same tokens. :func:`generate_rows` runs many steering vectors (strengths, vector sources,
seeds) as rows of ONE batch of copies of the prompt (no padding, so each row equals the prompt
run alone), each row with its own already-scaled vector, prompt-only, KV-cached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hublens.hooks.names import Site
from hublens.steering.hook import row_steering_hooks

#: Most (rows x positions) one forward holds: bounds the full-vocabulary logits in memory.
MAX_ROW_TOKENS = 1536


@torch.no_grad()
def generate(
    model: Any,
    prompt: str | Int[Tensor, "batch pos"],
    *,
    hooks: Sequence[tuple[str, Any]] = (),
    max_new_tokens: int = 10,
    use_past_kv_cache: bool = True,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> Int[Tensor, "batch new"]:
    """Generate under the given hooks; return the new tokens only.

    ``prompt`` rows must be unpadded (equal-length prompts). Sampling, when asked for, runs under
    ``torch.manual_seed(seed)`` inside a forked RNG state, so it is reproducible and leaves the
    caller's RNG untouched. Generation does not stop at EOS, so every row has
    ``max_new_tokens`` tokens.

    Args:
        model: A HubModel.
        prompt: A text (tokenized with the model's BOS policy) or a ``(batch, pos)`` id tensor.
        hooks: Forward hooks, e.g. from :func:`steering_hook_list` with ``prompt_len`` set.
        max_new_tokens: Tokens to generate.
        use_past_kv_cache: Use the KV cache (same greedy tokens as without it when steering is
            prompt-only).
        do_sample: Sample instead of greedy decoding.
        temperature: Sampling temperature.
        top_k: Sample from the k most likely tokens only.
        seed: Seed of the sampling RNG (required when ``do_sample``).

    Returns:
        ``(batch, max_new_tokens)`` new token ids.

    Example:
        >>> v = actadd_vector(model, "Good", "Bad", layer=6)  # doctest: +SKIP
        >>> ids = model.tokenize("I think").ids  # doctest: +SKIP
        >>> hooks = steering_hook_list(model, v, scale=4, prompt_len=ids.shape[1])  # doctest: +SKIP
        >>> new = generate(model, ids, hooks=hooks)  # doctest: +SKIP
    """
    ids = model.tokenize(prompt).ids if isinstance(prompt, str) else prompt
    if not isinstance(ids, Tensor) or ids.ndim != 2 or ids.shape[1] == 0:
        raise ValueError("prompt must be a non-empty text or a (batch, pos) tensor of token ids.")
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise ValueError(f"max_new_tokens={max_new_tokens!r}: pass a positive int.")
    if do_sample and seed is None:
        raise ValueError("do_sample=True needs seed=... so that the samples can be reproduced.")
    bridge = getattr(model, "bridge", model)
    with contextlib.ExitStack() as stack:
        if do_sample:
            stack.enter_context(torch.random.fork_rng(devices=[]))
            torch.manual_seed(int(seed))  # type: ignore[arg-type]
        stack.enter_context(bridge.hooks(fwd_hooks=list(hooks)))
        out = bridge.generate(
            ids,
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            temperature=temperature,
            top_k=top_k,
            use_past_kv_cache=use_past_kv_cache,
            stop_at_eos=False,
            verbose=False,
            return_type="tokens",
        )
    return out[:, ids.shape[1] :]


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
