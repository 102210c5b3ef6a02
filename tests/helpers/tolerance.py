"""Numerical tolerances derived from the computation, not tuned to one machine.

A logit-lens log-prob is ``log_softmax(n(h) @ W_U.T)``. Two fp32 implementations of it (hublens's
vocabulary-chunked logsumexp and transformers' single ``log_softmax``) round differently, and how
they round depends on the BLAS kernels of the CPU. The bound used here:

- one logit is a dot product of length ``d``: its fp32 rounding error is at most
  ``gamma * sum_i |x_i| |W_vi|`` (Higham, *Accuracy and Stability of Numerical Algorithms*,
  eq. 3.5); we take the probabilistic ``gamma = sqrt(d) * eps`` (Higham §3.6: errors of blocked and
  vectorised sums grow like ``sqrt(d)``) rather than the worst case ``d * eps``;
- the log-normaliser ``logsumexp`` is a convex combination of the logits to first order, so it
  moves by at most the largest logit error, plus ``eps * (|max logit| + log V)`` for its own
  rounding;
- a log-prob (logit minus normaliser) of one implementation is therefore within ``2 delta`` of the
  exact value, and two implementations within ``4 delta``.

On the bundled models this gives 1.5e-3 (Gemma-3-270M) and 2.5e-3 (SmolLM2-135M) where the
largest differences seen were 7e-5 and 4e-5 on one CPU and 1.4e-4 on another (issue 16): the
bound holds with an order of magnitude to spare and still catches any real error of the lens
(a missing norm, a wrong row, a dropped soft-cap move log-probs by 0.1 to 10^4).
"""

from __future__ import annotations

import math

import torch

EPS32 = float(torch.finfo(torch.float32).eps)


def logprob_atol(normed: torch.Tensor, weight: torch.Tensor) -> float:
    """Bound on |difference| of two fp32 lens log-prob implementations on rows ``normed``.

    Args:
        normed: The rows after the final norm (or raw rows for a no-norm lens), ``(..., d)``.
        weight: The unembedding ``(V, d)``.
    """
    normed = normed.detach()
    x = normed.reshape(-1, normed.shape[-1]).double().abs()
    w = weight.detach().double()
    condition = 0.0
    largest = 0.0
    for start in range(0, w.shape[0], 32768):  # bounded memory over large vocabularies
        chunk = w[start : start + 32768]
        condition = max(condition, float((x @ chunk.abs().T).max()))
        largest = max(largest, float((normed.reshape(x.shape).double() @ chunk.T).abs().max()))
    d, vocab = x.shape[-1], w.shape[0]
    delta = math.sqrt(d) * EPS32 * condition + EPS32 * (largest + math.log(vocab))
    return 4.0 * delta


def reference_lens_atol(reference, h: torch.Tensor, *, final_norm: bool = True) -> float:
    """:func:`logprob_atol` for rows ``h`` read through a plain transformers model's head."""
    with torch.no_grad():
        normed = reference.model.norm(h) if final_norm else h
    return logprob_atol(normed, reference.lm_head.weight)
