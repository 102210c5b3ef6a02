"""The forward passes of activation patching: read states, and read outputs under a patch.

Both run right-padded batches (:meth:`HubModel.tokenize`), so each row's real positions equal
the row run alone. :func:`read_states` captures one position's ``resid_post`` per prompt and
layer and stops after the last layer asked for; :func:`patched_logprobs` writes given states
over one position per prompt (:func:`hublens.steering.hook.patch_hooks`, the one hook that
writes at positions) and reads the model's own next-token log-probs at each prompt's last
token; :class:`PatchTarget` caches each target prompt's clean prefix, so a patched run
recomputes only the positions from the patch position on.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hublens.hooks import ActivationStore, capture_hooks, hook_name
from hublens.hooks.positions import Positions
from hublens.hooks.stop import forward_until
from hublens.steering.hook import patch_hooks

__all__ = ["PatchTarget", "check_position", "read_states", "resolve_positions"]


def check_position(position: Any) -> int:
    """Validate the ``position`` option: an int, negative counting from the end.

    Raises:
        TypeError: Not an int.
    """
    if isinstance(position, bool) or not isinstance(position, int):
        raise TypeError(f"position={position!r}: pass an int (-1 is the last token).")
    return position


def resolve_positions(
    model: Any, prompts: Sequence[str], position: int, argument: str
) -> Int[Tensor, " n"]:
    """Each prompt's patch position (``position`` counted from the end when negative).

    Tokenizes only (no forward), so every prompt is checked before anything runs.

    Raises:
        ValueError: A prompt has no such position; the message names it and its length.
    """
    rows = model.encode_rows(list(prompts), describe=lambda i: f"{argument}[{i}]")
    out = []
    for i, row in enumerate(rows):
        resolved = position if position >= 0 else len(row) + position
        if not 0 <= resolved < len(row):
            raise ValueError(
                f"position={position}: {argument}[{i}] has {len(row)} tokens (BOS included), so "
                f"valid positions are {-len(row)}..{len(row) - 1}; pass one of those (-1 is the "
                "last token)."
            )
        out.append(resolved)
    return torch.tensor(out, dtype=torch.long)


def _batches(n: int, batch_size: int) -> list[slice]:
    return [slice(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


@torch.no_grad()
def read_states(
    model: Any,
    prompts: Sequence[str],
    positions: Int[Tensor, " n"],
    layers: Sequence[int],
    *,
    batch_size: int = 16,
    tick: Callable[[int], Any] | None = None,
) -> Float[Tensor, "layer n d_model"]:
    """``resid_post`` of every prompt at its position, at each of ``layers`` (fp32, CPU).

    Args:
        model: A HubModel.
        prompts: The prompts.
        positions: One non-negative position per prompt (:func:`resolve_positions`).
        layers: Sorted, validated layers.
        batch_size: Prompts per forward.
        tick: Called with the number of prompts done after each batch (a progress bar).
    """
    out = []
    for part in _batches(len(prompts), batch_size):
        batch = model.tokenize(list(prompts[part]))
        store = ActivationStore()
        where = Positions(positions[part].reshape(-1, 1))
        hooks = capture_hooks(model, store, layers=layers, where=where, to_cpu=True)
        with model.hooks(fwd_hooks=hooks):
            forward_until(model, batch.ids, max(layers) + 1, attention_mask=batch.attention_mask)
        out.append(store.stack([hook_name(layer) for layer in layers])[:, :, 0].float())
        if tick is not None:
            tick(part.stop - part.start)
    return torch.cat(out, dim=1)


def _clone_cache(cache: Any) -> Any:
    """A copy of a HuggingFace KV cache (a forward extends the cache it is given in place)."""
    return None if cache is None else copy.deepcopy(cache)


class PatchTarget:
    """Target prompts, each run once up to its patch position and cached there.

    A patch at position p cannot change positions before p (causal attention), so each
    patched run only recomputes positions ``p..end`` on top of the clean prefix's KV cache
    (TransformerBridge's ``past_key_values``): for last-token patching one position per prompt
    instead of the whole prompt. Prompts are grouped by (length, position), so no batch is
    padded and each row equals the prompt run alone.

    Args:
        model: A HubModel.
        prompts: The target prompts.
        positions: One non-negative patch position per prompt (:func:`resolve_positions`).
        batch_size: Prompts per forward.
        tick: Called with the number of prompts done after each batch.
    """

    @torch.no_grad()
    def __init__(
        self,
        model: Any,
        prompts: Sequence[str],
        positions: Int[Tensor, " n"],
        *,
        batch_size: int = 16,
        tick: Callable[[int], Any] | None = None,
    ) -> None:
        self.model = model
        self.n = len(prompts)
        rows = model.encode_rows(list(prompts))
        groups: dict[tuple[int, int], list[int]] = {}
        for i, row in enumerate(rows):
            groups.setdefault((len(row), int(positions[i])), []).append(i)
        self.chunks: list[tuple[list[int], Tensor, Any]] = []
        bridge = getattr(model, "bridge", model)
        for (_, pos), members in groups.items():
            for start in range(0, len(members), batch_size):
                part = members[start : start + batch_size]
                ids = torch.tensor([rows[i] for i in part], dtype=torch.long, device=model.device)
                cache = None
                if pos > 0:
                    _, cache = bridge(ids[:, :pos], return_type="logits_and_cache", use_cache=True)
                self.chunks.append((part, ids[:, pos:], cache))
                if tick is not None:
                    tick(len(part))

    @torch.no_grad()
    def logprobs(
        self,
        token_ids: Int[Tensor, "n n_targets"],
        *,
        states: Float[Tensor, "layer n d_model"] | None = None,
        layers: Sequence[int] = (),
        capture: Sequence[int] = (),
    ) -> tuple[Float[Tensor, "n n_targets"], Float[Tensor, "layer n d_model"] | None]:
        """Next-token log-probs of ``token_ids`` at each prompt's last token, under one patch.

        Args:
            token_ids: ``(n, n_targets)`` ids to read per prompt.
            states: ``(len(layers), n, d_model)`` states written over each prompt's patch
                position at ``layers``; None (or no layers) runs the prompts unpatched.
            layers: The patched layers.
            capture: Layers whose (possibly patched) states at the patch position to return.

        Returns:
            The log-probs (fp32, CPU) and the captured ``(layer, n, d_model)`` states (fp32,
            CPU; None when ``capture`` is empty).
        """
        run = (states, list(layers)) if states is not None and len(layers) else None
        logps, captured, _ = self._run([run], token_ids, capture, max_rows=self.n)
        return logps[0], captured

    @torch.no_grad()
    def logprobs_runs(
        self,
        token_ids: Int[Tensor, "n n_targets"],
        runs: Sequence[tuple[Tensor, Sequence[int]]],
        *,
        max_rows: int = 256,
        tick: Callable[[int], Any] | None = None,
    ) -> list[Float[Tensor, "n n_targets"]]:
        """:meth:`logprobs` for many patches at once, as rows of the same batches.

        Each run ``(states, layers)`` patches every prompt; the rows of all runs share one
        forward per chunk of prompts (each patch hook changes only its own rows), so a sweep
        over layers and conditions reads the weights once per chunk instead of once per run.

        Args:
            token_ids: ``(n, n_targets)`` ids to read per prompt.
            runs: ``(states, layers)`` pairs, ``states`` of shape ``(len(layers), n, d_model)``.
            max_rows: Most rows one forward holds.
            tick: Called with the number of (prompt, run) rows done after each forward.

        Returns:
            One ``(n, n_targets)`` log-prob tensor per run.
        """
        prepared = [(states, list(layers)) for states, layers in runs]
        return self._run(prepared, token_ids, (), max_rows=max_rows, tick=tick)[0]

    @torch.no_grad()
    def top_runs(
        self,
        runs: Sequence[tuple[Tensor, Sequence[int]] | None],
        token_ids: Int[Tensor, "n n_targets"],
        top_k: int,
        *,
        max_rows: int = 256,
        tick: Callable[[int], Any] | None = None,
    ) -> list[tuple[Tensor, Tensor, Tensor]]:
        """:meth:`logprobs_runs` that also returns each row's ``top_k`` next tokens.

        Args:
            runs: ``(states, layers)`` pairs as in :meth:`logprobs_runs`; None runs unpatched.
            token_ids: ``(n, n_targets)`` ids to read per prompt.
            top_k: How many of the most probable next tokens to return (>= 1).
            max_rows: Most rows one forward holds.
            tick: Called with the number of (prompt, run) rows done after each forward.

        Returns:
            Per run: the ``(n, n_targets)`` log-probs, the ``(n, top_k)`` top log-probs and
            the ``(n, top_k)`` top token ids.
        """
        prepared = [None if run is None else (run[0], list(run[1])) for run in runs]
        logps, _, tops = self._run(
            prepared, token_ids, (), max_rows=max_rows, tick=tick, top_k=top_k
        )
        return [(logp, *top) for logp, top in zip(logps, tops, strict=True)]

    def _run(
        self,
        runs: Sequence[tuple[Tensor, list[int]] | None],
        token_ids: Tensor,
        capture: Sequence[int],
        *,
        max_rows: int,
        tick: Callable[[int], Any] | None = None,
        top_k: int = 0,
    ) -> tuple[list[Tensor], Tensor | None, list[tuple[Tensor, Tensor]]]:
        model = self.model
        bridge = getattr(model, "bridge", model)
        logps = [torch.empty(token_ids.shape, dtype=torch.float32) for _ in runs]
        tops = [
            (torch.empty(self.n, top_k), torch.empty(self.n, top_k, dtype=torch.long))
            for _ in (runs if top_k else ())
        ]
        captured = torch.empty(len(capture), self.n, model.d_model) if capture else None
        for part, step, cache in self.chunks:
            per = max(1, max_rows // len(part))
            for first in range(0, len(runs), per):
                chosen = list(runs[first : first + per])
                rep = len(chosen)
                hooks = self._patches(chosen, part, rep)
                store = ActivationStore()
                at = torch.zeros(len(part) * rep, dtype=torch.long)  # the first step position
                if capture:
                    where = Positions(at.reshape(-1, 1))
                    hooks += capture_hooks(model, store, layers=capture, where=where, to_cpu=True)
                past = _clone_cache(cache)
                if past is not None and rep > 1:
                    past.batch_repeat_interleave(rep)
                with model.hooks(fwd_hooks=hooks):
                    logits = bridge(step.repeat_interleave(rep, 0), past_key_values=past)
                out = torch.log_softmax(logits[:, -1].float(), dim=-1).cpu()
                ids = token_ids[part].repeat_interleave(rep, 0)
                values = out.gather(1, ids).reshape(len(part), rep, -1)
                for k in range(rep):
                    logps[first + k][part] = values[:, k]
                if top_k:
                    best = out.topk(top_k, dim=-1)
                    top_values = best.values.reshape(len(part), rep, -1)
                    top_ids = best.indices.reshape(len(part), rep, -1)
                    for k in range(rep):
                        tops[first + k][0][part] = top_values[:, k]
                        tops[first + k][1][part] = top_ids[:, k]
                if captured is not None:
                    stacked = store.stack([hook_name(layer) for layer in capture])[:, :, 0]
                    captured[:, part] = stacked.float()
                if tick is not None:
                    tick(len(part) * rep)
        return logps, captured, tops

    def _patches(
        self, runs: Sequence[tuple[Tensor, list[int]] | None], part: list[int], rep: int
    ) -> list[tuple[str, Any]]:
        """Patch hooks for ``rep`` runs laid out as rows ``i * rep + k`` (prompt i, run k)."""
        layers = sorted({layer for run in runs if run is not None for layer in run[1]})
        if not layers:
            return []
        rows = len(part) * rep
        states = torch.zeros(len(layers), rows, self.model.d_model)
        mask = torch.zeros(len(layers), rows, dtype=torch.bool)
        index = torch.tensor(part)
        for k, run in enumerate(runs):
            if run is None:
                continue
            run_states, run_layers = run
            for j, layer in enumerate(run_layers):
                slot = layers.index(layer)
                states[slot, k::rep] = run_states[j, index].float()
                mask[slot, k::rep] = True
        at = torch.zeros(rows, dtype=torch.long)
        return patch_hooks(self.model, states, at, layers=layers, rows=mask)
