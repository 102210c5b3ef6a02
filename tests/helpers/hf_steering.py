"""Steering done by hand on the plain transformers model: the independent side of the tests.

Every helper registers an ordinary PyTorch hook on ``reference.model.layers[layer]`` (the HF
decoder layer): a forward hook edits its output (``resid_post``), a forward pre-hook its input
(``resid_pre``). ``prompt_len`` skips passes shorter than the prompt (KV-cached decode steps), as
hublens's prompt-only guard does. Nothing here imports hublens's steering code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch


def bos_ids(model, text: str) -> list[int]:
    """Token ids of ``text`` with BOS where the model prepends one (from the tokenizer alone)."""
    ids = model.tokenizer.encode(text, add_special_tokens=False)
    return [model.tokenizer.bos_token_id, *ids] if model.prepend_bos else ids


def _edit(hidden: torch.Tensor, rows: torch.Tensor, positions: Sequence[int]) -> torch.Tensor:
    """``hidden[b, p_j] += rows[b, j]`` (rows: (batch or 1, k, d))."""
    hidden = hidden.clone()
    for j, p in enumerate(positions):
        hidden[:, p] += rows[:, j]
    return hidden


@contextlib.contextmanager
def add_post(
    reference, layer: int, rows: torch.Tensor, positions: Sequence[int], prompt_len=None
) -> Iterator[None]:
    """Add ``rows[b, j]`` to the OUTPUT of HF layer ``layer`` at ``positions[j]``."""

    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if prompt_len is not None and hidden.shape[1] < prompt_len:
            return output
        hidden = _edit(hidden, rows, positions)
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = reference.model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def add_pre(
    reference, layer: int, rows: torch.Tensor, positions: Sequence[int], prompt_len=None
) -> Iterator[None]:
    """Add ``rows[b, j]`` to the INPUT of HF layer ``layer`` (resid_pre) at ``positions[j]``."""

    def hook(module, args, kwargs):
        in_args = bool(args)
        hidden = args[0] if in_args else kwargs["hidden_states"]
        if prompt_len is not None and hidden.shape[1] < prompt_len:
            return None
        hidden = _edit(hidden, rows, positions)
        if in_args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    handle = reference.model.layers[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def edit_post(
    reference, layer: int, edit: Callable[[torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    """Replace the output of HF layer ``layer`` by ``edit(output)``."""

    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = edit(hidden.clone())
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = reference.model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def pre_hidden(reference, ids: torch.Tensor, layer: int) -> torch.Tensor:
    """Input of HF layer ``layer`` (resid_pre) for ``ids``, read by a pre-hook."""
    seen = {}

    def hook(module, args, kwargs):
        seen["h"] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

    handle = reference.model.layers[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            reference(input_ids=ids)
    finally:
        handle.remove()
    return seen["h"]


def post_hidden(reference, ids: torch.Tensor, layer: int) -> torch.Tensor:
    """Output of HF layer ``layer`` (resid_post; not the last layer, which HF norms)."""
    with torch.no_grad():
        return reference(input_ids=ids, output_hidden_states=True).hidden_states[layer + 1]


def greedy(reference, ids: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` greedy tokens by full re-forwards (no KV cache); returns the new tokens."""
    seq = ids
    with torch.no_grad():
        for _ in range(steps):
            nxt = reference(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    return seq[:, ids.shape[1] :]
