"""Prompt-only patching under generation: patch a source state into a prompt, then decode.

The patch acts in the pass that holds the whole target prompt and only there (the
``prompt_len`` guard of :class:`hublens.steering.hook.SteerHook`), so KV-cached decode steps
are never touched and cached and uncached greedy generation give the same tokens; every
generated token sees the patched prompt through attention (from the KV cache or recomputed).
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from hublens.hooks.names import validate_layers
from hublens.patching.forwards import check_position, read_states, resolve_positions
from hublens.steering.checks import Layers, layer_selection
from hublens.steering.generate import generate
from hublens.steering.hook import patch_hooks

__all__ = ["patched_generate", "patchscope_generate"]


@torch.no_grad()
def patched_generate(
    model: Any,
    source: str,
    target: str,
    *,
    layers: Layers,
    position: int = -1,
    max_new_tokens: int = 10,
    use_past_kv_cache: bool = True,
) -> Int[Tensor, "1 new"]:
    """Greedy continuation of ``target`` with ``source``'s state patched in at ``layers``.

    Args:
        model: A HubModel.
        source: The prompt whose ``resid_post`` is read.
        target: The prompt it is written into (then continued).
        layers: Layer(s) to patch, each with the source's state at that layer.
        position: Position read in the source and written in the target, counted from the end
            when negative (-1: the last token of each).
        max_new_tokens: Tokens to generate.
        use_past_kv_cache: Decode with the KV cache (same tokens as without it).

    Returns:
        ``(1, max_new_tokens)`` new token ids.

    Raises:
        ValueError / TypeError: A layer out of range, or a prompt without that position
            (before any forward).

    Example:
        >>> new = patched_generate(model, src, tgt, layers=9)  # doctest: +SKIP
        >>> model.tokenizer.decode(new[0])  # doctest: +SKIP
    """
    chosen = validate_layers(model, layer_selection(layers))
    check_position(position)
    src_pos = resolve_positions(model, [source], position, "source")
    tgt_pos = resolve_positions(model, [target], position, "target")
    ids = model.tokenize(target).ids
    states = read_states(model, [source], src_pos, chosen)
    hooks = patch_hooks(model, states, tgt_pos, layers=chosen, prompt_len=ids.shape[1])
    return generate(
        model,
        ids,
        hooks=hooks,
        max_new_tokens=max_new_tokens,
        use_past_kv_cache=use_past_kv_cache,
    )


@torch.no_grad()
def patchscope_generate(
    model: Any,
    source: str,
    *,
    layers: Layers | None = None,
    identity: str | None = None,
    placeholder: str = "?",
    position: int = -1,
    into: int | None = None,
    max_new_tokens: int = 4,
    use_past_kv_cache: bool = True,
) -> dict[int, str]:
    """Greedy patchscope: the identity prompt's continuation with ``source``'s state patched in.

    Per source layer, the state at ``position`` is written over the placeholder (at the same
    layer, or at ``into``) in the prompt pass only (KV-cached decode steps are not touched), and
    ``max_new_tokens`` tokens are decoded greedily.

    Args:
        model: A HubModel.
        source: The prompt whose state is decoded.
        layers: Source layers (None: all).
        identity: The identity prompt (default: ``patchscope.IDENTITY_PROMPT``).
        placeholder: The text whose token the state replaces.
        position: Source position, counted from the end when negative.
        into: Patch every state into this one layer (None: the same layer).
        max_new_tokens: Tokens to decode per layer.
        use_past_kv_cache: Decode with the KV cache (same tokens as without it).

    Returns:
        Source layer -> the decoded continuation.

    Raises:
        ValueError / TypeError: Bad placeholder, layers, position (before any forward).

    Example:
        >>> src = 'Français: "chat" - English: "'
        >>> patchscope_generate(model, src, layers=[6])  # doctest: +SKIP
        {6: ' cat; dog'}
    """
    from hublens.patching.patchscope import IDENTITY_PROMPT, placeholder_position, target_layers

    identity = IDENTITY_PROMPT if identity is None else identity
    chosen, targets = target_layers(model, layers, into)
    check_position(position)
    slot = placeholder_position(model, identity, placeholder)
    src_pos = resolve_positions(model, [source], position, "source")
    ids = model.tokenize(identity).ids
    states = read_states(model, [source], src_pos, chosen)
    out = {}
    for j, (layer, target) in enumerate(zip(chosen, targets, strict=True)):
        hooks = patch_hooks(model, states[[j]], [slot], layers=[target], prompt_len=ids.shape[1])
        new = generate(
            model,
            ids,
            hooks=hooks,
            max_new_tokens=max_new_tokens,
            use_past_kv_cache=use_past_kv_cache,
        )
        out[layer] = model.tokenizer.decode(new[0])
    return out
