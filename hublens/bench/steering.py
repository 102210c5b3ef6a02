"""Greedy generation with prompt-only steering against the same generation without."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from hublens.hooks import steering_hooks

PLAIN = "greedy generation"
STEERED = "greedy generation, prompt-only steering (1 layer)"


def steering_variants(
    model: Any, prompt: str, *, max_new_tokens: int = 16, scale: float = 4.0
) -> dict[str, Callable[[], Any]]:
    """Both generations (KV cache on, EOS ignored so both produce ``max_new_tokens``)."""
    batch = model.tokenize(prompt)
    prompt_len = int(batch.ids.shape[1])
    generator = torch.Generator().manual_seed(0)
    vector = torch.randn(model.d_model, generator=generator)
    hooks = steering_hooks(
        model, vector, layers=model.n_layers // 2, scale=scale, prompt_len=prompt_len
    )

    def generate() -> Any:
        return model.generate(
            batch.ids,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            use_past_kv_cache=True,
            verbose=False,
            stop_at_eos=False,
        )

    def steered() -> Any:
        with model.hooks(fwd_hooks=hooks):
            return generate()

    return {PLAIN: generate, STEERED: steered}
