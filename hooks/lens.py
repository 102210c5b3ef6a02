"""The logit lens: read residual-stream rows through the unembedding, memory-bounded.

Only what is asked for is computed in full: the log-normaliser (a running logsumexp over
vocabulary chunks), the selected targets' log-probs (one small matmul over their rows of
W_U), and the top-k when requested. Everything is fp32. One call takes rows from any number of
layers, so a readout of every layer is one pass over W_U.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.hook_points import HookPoint

from hublens.hooks.names import Site, hook_name, validate_layers
from hublens.hooks.positions import LastToken, Selector

#: Largest number of fp32 logits one chunk may hold (rows x chunk width): 1 MiB, so each chunk's
#: logsumexp / top-k reads logits still in cache right after their matmul. Measured on
#: Gemma-3-270M (144 rows x 262k vocab, 1 thread): 0.96x the time of one batched matmul of all
#: rows, against 1.39x with 128 MiB chunks (docs/benchmarks.md).
_CHUNK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class LensReadout:
    """What a lens read off some rows.

    Attributes:
        target_logprobs: Log-probs of the requested token ids, ``(*rows, n_targets)``.
        top_ids: Ids of the top-k tokens, ``(*rows, k)`` (k may be 0).
        top_logprobs: Their log-probs.
        logsumexp: The log-normaliser of each row.
        final_norm: Whether the final norm was applied before unembedding.
    """

    target_logprobs: Float[Tensor, "*rows n_targets"] | None
    top_ids: Int[Tensor, "*rows k"]
    top_logprobs: Float[Tensor, "*rows k"]
    logsumexp: Float[Tensor, "*rows"]
    final_norm: bool


@dataclass
class LogitLens:
    """Logit lens over a model's unembedding, with or without the final norm.

    Attributes:
        weight: Unembedding rows, ``(d_vocab, d_model)`` (the model's own tensor, not copied).
        bias: Unembedding bias or None.
        norm: The final norm module, or None to unembed raw residuals (the paper's choice).
        softcap: Final-logit soft-capping, or None.
        max_chunk_elements: Memory bound: logits held at once (rows x vocabulary chunk).
    """

    weight: Float[Tensor, "d_vocab d_model"]
    bias: Float[Tensor, " d_vocab"] | None = None
    norm: torch.nn.Module | None = None
    softcap: float | None = None
    max_chunk_elements: int = _CHUNK_ELEMENTS

    @classmethod
    def from_model(cls, model: Any, *, final_norm: bool = True) -> LogitLens:
        """Build the lens of a HubModel.

        Args:
            model: The HubModel.
            final_norm: Apply the model's final norm first (Wendler et al.; the default) or not
                (the semantic hub paper's authors).
        """
        return cls(
            weight=model.unembedding_weight,
            bias=model.unembedding_bias,
            norm=model.final_norm if final_norm else None,
            softcap=model.logit_softcap,
        )

    @property
    def final_norm(self) -> bool:
        """Whether the final norm is applied."""
        return self.norm is not None

    @property
    def d_vocab(self) -> int:
        """Vocabulary size."""
        return int(self.weight.shape[0])

    def _prepare(self, h: Tensor) -> Tensor:
        d_model = self.weight.shape[1]
        if h.shape[-1] != d_model:
            raise ValueError(
                f"The lens expects rows of width d_model={d_model}; got shape {tuple(h.shape)}."
            )
        x = h.reshape(-1, d_model).to(self.weight.device)
        if self.norm is not None:
            norm_dtype = next(self.norm.parameters(), x).dtype
            with torch.no_grad():
                x = self.norm(x.to(norm_dtype))
        return x.float()

    def _finish(self, logits: Tensor) -> Tensor:
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def _logits(self, x: Tensor, start: int, stop: int) -> Tensor:
        logits = x @ self.weight[start:stop].float().T
        if self.bias is not None:
            logits = logits + self.bias[start:stop].float()
        return self._finish(logits)

    @torch.no_grad()
    def logprobs(self, h: Float[Tensor, "*rows d_model"]) -> Float[Tensor, "*rows d_vocab"]:
        """Full-vocabulary log-probs (memory grows with the vocabulary; for small inputs)."""
        x = self._prepare(h)
        return torch.log_softmax(self._logits(x, 0, self.d_vocab), dim=-1).reshape(
            *h.shape[:-1], self.d_vocab
        )

    @torch.no_grad()
    def readout(
        self,
        h: Float[Tensor, "*rows d_model"],
        token_ids: Int[Tensor, "*rows n_targets"]
        | Int[Tensor, " n_targets"]
        | Sequence[int]
        | None = None,
        *,
        top_k: int = 0,
    ) -> LensReadout:
        """Log-probs of selected tokens (and the top-k) at each row.

        Args:
            h: Residual-stream rows, any leading shape.
            token_ids: Ids to read: ``(n_targets,)`` for every row, or one set per row with
                the same leading shape as ``h``. None reads no targets.
            top_k: How many most-likely tokens to return per row.

        Returns:
            The readout, fp32, on the unembedding's device.

        Raises:
            ValueError: Width mismatch, ids outside the vocabulary, negative ``top_k``, or
                non-finite rows.
        """
        if top_k < 0 or top_k > self.d_vocab:
            raise ValueError(f"top_k={top_k}: choose 0..{self.d_vocab}.")
        lead = h.shape[:-1]
        x = self._prepare(h)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("The lens got NaN or infinite hidden states; check the inputs.")
        rows = x.shape[0]
        ids = None if token_ids is None else torch.as_tensor(token_ids, device=x.device)
        if ids is not None:
            ids = self._check_ids(ids, lead)
        width = max(1024, self.max_chunk_elements // max(rows, 1))
        lse = torch.full((rows,), -torch.inf, device=x.device)
        top_vals = torch.empty((rows, 0), device=x.device)
        top_idx = torch.empty((rows, 0), dtype=torch.long, device=x.device)
        for start in range(0, self.d_vocab, width):
            stop = min(start + width, self.d_vocab)
            logits = self._logits(x, start, stop)
            lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=-1))
            if top_k:
                k = min(top_k, stop - start)
                vals, idx = logits.topk(k, dim=-1)
                top_vals, order = torch.cat([top_vals, vals], -1).topk(
                    min(top_k, top_vals.shape[1] + k), dim=-1
                )
                top_idx = torch.cat([top_idx, idx + start], -1).gather(-1, order)
        target = None
        if ids is not None:
            flat = ids.reshape(rows, -1) if ids.ndim > 1 else ids.expand(rows, -1)
            rows_w = self.weight[flat].float()  # (rows, n_targets, d_model)
            logits = torch.einsum("rd,rtd->rt", x, rows_w)
            if self.bias is not None:
                logits = logits + self.bias[flat].float()
            target = (self._finish(logits) - lse[:, None]).reshape(*lead, -1)
        return LensReadout(
            target_logprobs=target,
            top_ids=top_idx.reshape(*lead, -1),
            top_logprobs=(top_vals - lse[:, None]).reshape(*lead, -1),
            logsumexp=lse.reshape(lead),
            final_norm=self.final_norm,
        )

    @torch.no_grad()
    def expectation(
        self,
        h: Float[Tensor, "*rows d_model"],
        values: Float[Tensor, "d_vocab n_values"],
    ) -> Float[Tensor, "*rows n_values"]:
        """Expected value of per-token vectors under the lens distribution, memory-bounded.

        Computes ``sum_v p_lens(v | h) * values[v, :]`` for every row, one vocabulary chunk at
        a time with a running logsumexp (the accumulator is rescaled whenever the running
        maximum moves), so no full-vocabulary probability row is ever held. fp32 throughout.

        Args:
            h: Residual-stream rows, any leading shape.
            values: One vector per vocabulary entry, ``(d_vocab, n_values)``.

        Returns:
            ``(*rows, n_values)``, fp32, on the unembedding's device.

        Raises:
            ValueError: Width mismatch, ``values`` not ``(d_vocab, n_values)`` or not finite,
                or non-finite rows.
        """
        if values.ndim != 2 or values.shape[0] != self.d_vocab:
            raise ValueError(
                f"values must be (d_vocab={self.d_vocab}, n_values); got {tuple(values.shape)}."
            )
        lead = h.shape[:-1]
        x = self._prepare(h)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("The lens got NaN or infinite hidden states; check the inputs.")
        vals = values.to(device=x.device, dtype=torch.float32)
        if not bool(torch.isfinite(vals).all()):
            raise ValueError("values contains NaN or infinite entries.")
        rows = x.shape[0]
        width = max(1024, self.max_chunk_elements // max(rows, 1))
        lse = torch.full((rows, 1), -torch.inf, device=x.device)
        acc = torch.zeros((rows, vals.shape[1]), device=x.device)
        for start in range(0, self.d_vocab, width):
            stop = min(start + width, self.d_vocab)
            logits = self._logits(x, start, stop)
            new_lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=-1, keepdim=True))
            acc = acc * torch.exp(lse - new_lse) + torch.exp(logits - new_lse) @ vals[start:stop]
            lse = new_lse
        return acc.reshape(*lead, vals.shape[1])

    def _check_ids(self, ids: Tensor, lead: torch.Size) -> Tensor:
        if ids.numel() == 0:
            raise ValueError("token_ids is empty: pass at least one id, or None for no targets.")
        if ids.is_floating_point():
            raise ValueError("token_ids must be integer token ids, not floats.")
        if int(ids.min()) < 0 or int(ids.max()) >= self.d_vocab:
            raise ValueError(
                f"token_ids must lie in [0, {self.d_vocab}); got min {int(ids.min())}, "
                f"max {int(ids.max())}."
            )
        if ids.ndim > 1 and ids.shape[:-1] != lead:
            raise ValueError(
                f"Per-row token_ids have leading shape {tuple(ids.shape[:-1])}, the rows "
                f"{tuple(lead)}; pass (n_targets,) for all rows or match the rows."
            )
        return ids.long()


@dataclass
class LensHook:
    """Hook that reads its selected rows through a logit lens into a store.

    Attributes:
        lens: The lens.
        store: ``hook name -> list of readouts`` (one per forward pass), owned by the caller.
        where: Positions to read.
        token_ids: Target ids (see :meth:`LogitLens.readout`).
        top_k: Top-k per row.
        key: Store key; None uses the hook point's canonical name.
    """

    lens: LogitLens
    store: dict[str, list[LensReadout]]
    where: Selector = field(default_factory=LastToken)
    token_ids: Tensor | Sequence[int] | None = None
    top_k: int = 0
    key: str | None = None

    def __call__(self, x: Float[Tensor, "batch pos d_model"], hook: HookPoint) -> None:
        """Read the rows; returns None so the forward pass is unchanged."""
        readout = self.lens.readout(self.where.gather(x.detach()), self.token_ids, top_k=self.top_k)
        self.store.setdefault(self.key or str(hook.name), []).append(readout)


def lens_hooks(
    model: Any,
    store: dict[str, list[LensReadout]],
    *,
    layers: int | Iterable[int] | None = None,
    site: Site = "resid_post",
    final_norm: bool = True,
    token_ids: Tensor | Sequence[int] | None = None,
    top_k: int = 0,
    where: Selector | None = None,
) -> list[tuple[str, LensHook]]:
    """Logit-lens hooks over several layers, for ``model.hooks(fwd_hooks=...)``.

    Args:
        model: A HubModel.
        store: Where readouts go.
        layers: Layers to read (None: all).
        site: Residual-stream site.
        final_norm: Apply the final norm before unembedding.
        token_ids: Target ids.
        top_k: Top-k per row.
        where: Positions to read (default: last token).

    Returns:
        ``(hook_name, hook)`` pairs.
    """
    lens = LogitLens.from_model(model, final_norm=final_norm)
    where = where or LastToken()
    return [
        (name, LensHook(lens, store, where, token_ids, top_k, key=name))
        for name in (hook_name(layer, site) for layer in validate_layers(model, layers))
    ]
