"""The unembedding: the one place hublens turns residual-stream rows into logits and log-probs.

:class:`Unembed` holds the model's final norm, W_U, its bias and the final-logit soft-cap, and
computes, memory-bounded and in fp32, only what is asked for: the log-normaliser (a running
logsumexp over vocabulary chunks), the log-probs of selected targets (one small matmul over
their rows of W_U), the top-k, or the expectation of per-token vectors. Every lens
(:class:`hublens.hooks.lens.Lens` and its subclasses), projector training and the benchmarks
read through it; a lens only decides which rows get the norm and how rows are transformed
before.

Example:
    >>> unembed = Unembed(weight=torch.randn(50, 8))
    >>> x = unembed.prepare(torch.randn(3, 8), torch.zeros(3, dtype=torch.bool))
    >>> unembed.logprobs(x).exp().sum(-1)  # doctest: +SKIP
    tensor([1.0000, 1.0000, 1.0000])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

#: Largest number of fp32 logits one chunk may hold (rows x chunk width): 1 MiB, so each chunk's
#: logsumexp / top-k reads logits still in cache right after their matmul. Measured on
#: Gemma-3-270M (144 rows x 262k vocab, 1 thread): 0.96x the time of one batched matmul of all
#: rows, against 1.39x with 128 MiB chunks (docs/benchmarks.md).
CHUNK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class ChunkedReadout:
    """What :meth:`Unembed.readout` computed over flat rows.

    Attributes:
        target_logprobs: Log-probs of the requested ids, ``(rows, n_targets)``, or None.
        top_ids: Ids of the top-k tokens, ``(rows, k)``.
        top_logprobs: Their log-probs.
        logsumexp: The log-normaliser of each row, ``(rows,)``.
    """

    target_logprobs: Float[Tensor, "rows n_targets"] | None
    top_ids: Int[Tensor, "rows k"]
    top_logprobs: Float[Tensor, "rows k"]
    logsumexp: Float[Tensor, " rows"]


@dataclass
class Unembed:
    """Final norm (optional per row), W_U, bias and soft-cap, over vocabulary chunks.

    Attributes:
        weight: Unembedding rows, ``(d_vocab, d_model)`` (the model's own tensor, not copied).
        bias: Unembedding bias or None.
        norm: The model's final norm module, or None if the model has none.
        softcap: Final-logit soft-capping, or None.
        max_chunk_elements: Memory bound: logits held at once (rows x vocabulary chunk).
    """

    weight: Float[Tensor, "d_vocab d_model"]
    bias: Float[Tensor, " d_vocab"] | None = None
    norm: torch.nn.Module | None = None
    softcap: float | None = None
    max_chunk_elements: int = CHUNK_ELEMENTS

    @classmethod
    def from_model(cls, model: Any) -> Unembed:
        """The unembedding of a HubModel (its final norm, W_U, bias and soft-cap)."""
        return cls(
            weight=model.unembedding_weight,
            bias=model.unembedding_bias,
            norm=model.final_norm,
            softcap=model.logit_softcap,
        )

    @property
    def d_vocab(self) -> int:
        """Vocabulary size."""
        return int(self.weight.shape[0])

    @property
    def d_model(self) -> int:
        """Width of the rows it reads."""
        return int(self.weight.shape[1])

    def prepare(
        self, x: Float[Tensor, "rows d_model"], normed: Bool[Tensor, " rows"]
    ) -> Float[Tensor, "rows d_model"]:
        """Move rows to the unembedding's device, apply the final norm where asked, cast fp32.

        The norm runs in its own parameters' dtype (as the model runs it). Differentiable: no
        ``no_grad`` here, so training code can back-propagate through it.

        Args:
            x: Flat rows.
            normed: Which rows get the final norm.

        Returns:
            fp32 rows on the unembedding's device.

        Raises:
            ValueError: Rows marked for the norm but the model has no final norm.
        """
        x = x.to(self.weight.device)
        normed = normed.to(x.device)
        if not bool(normed.any()):
            return x.float()
        if self.norm is None:
            raise ValueError("The model has no final norm to apply; read with final_norm=False.")
        norm_dtype = next(self.norm.parameters(), x).dtype
        if bool(normed.all()):
            return self.norm(x.to(norm_dtype)).float()
        out = x.float().clone()
        out[normed] = self.norm(x[normed].to(norm_dtype)).float()
        return out

    def _finish(self, logits: Tensor) -> Tensor:
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def logits(
        self, x: Float[Tensor, "rows d_model"], start: int = 0, stop: int | None = None
    ) -> Float[Tensor, "rows chunk"]:
        """fp32 logits of vocabulary entries ``start:stop`` (all by default); differentiable."""
        stop = self.d_vocab if stop is None else stop
        logits = x @ self.weight[start:stop].float().T
        if self.bias is not None:
            logits = logits + self.bias[start:stop].float()
        return self._finish(logits)

    def logprobs(self, x: Float[Tensor, "rows d_model"]) -> Float[Tensor, "rows d_vocab"]:
        """Full-vocabulary log-probs (memory grows with the vocabulary; for small inputs)."""
        return torch.log_softmax(self.logits(x), dim=-1)

    def _width(self, rows: int) -> int:
        return max(1024, self.max_chunk_elements // max(rows, 1))

    def readout(
        self,
        x: Float[Tensor, "rows d_model"],
        ids: Int[Tensor, "rows n_targets"] | Int[Tensor, " n_targets"] | None = None,
        top_k: int = 0,
    ) -> ChunkedReadout:
        """Log-normaliser, gathered target log-probs and top-k of prepared rows.

        Args:
            x: Prepared fp32 rows (see :meth:`prepare`).
            ids: Valid target ids, one set for all rows or one per row; None reads none.
            top_k: How many most-likely tokens to keep per row (0..d_vocab).

        Returns:
            The flat readout.
        """
        rows = x.shape[0]
        width = self._width(rows)
        lse = torch.full((rows,), -torch.inf, device=x.device)
        top_vals = torch.empty((rows, 0), device=x.device)
        top_idx = torch.empty((rows, 0), dtype=torch.long, device=x.device)
        for start in range(0, self.d_vocab, width):
            stop = min(start + width, self.d_vocab)
            logits = self.logits(x, start, stop)
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
            target = self._finish(logits) - lse[:, None]
        return ChunkedReadout(target, top_idx, top_vals - lse[:, None], lse)

    def expectation(
        self, x: Float[Tensor, "rows d_model"], values: Float[Tensor, "d_vocab n_values"]
    ) -> Float[Tensor, "rows n_values"]:
        """``sum_v p(v | x) * values[v]`` per row, one vocabulary chunk at a time.

        A running logsumexp rescales the accumulator whenever the running maximum moves, so no
        full-vocabulary probability row is ever held.

        Args:
            x: Prepared fp32 rows.
            values: fp32 vectors per vocabulary entry, on the rows' device.
        """
        rows = x.shape[0]
        width = self._width(rows)
        lse = torch.full((rows, 1), -torch.inf, device=x.device)
        acc = torch.zeros((rows, values.shape[1]), device=x.device)
        for start in range(0, self.d_vocab, width):
            stop = min(start + width, self.d_vocab)
            logits = self.logits(x, start, stop)
            new_lse = torch.logaddexp(lse, torch.logsumexp(logits, dim=-1, keepdim=True))
            acc = acc * torch.exp(lse - new_lse) + torch.exp(logits - new_lse) @ values[start:stop]
            lse = new_lse
        return acc
