"""Thresholds derived from the computation (as ``tests/helpers/tolerance.py`` derives them).

Log-probs (``log_softmax(n(h) @ W_U.T)``): one logit is a dot product of length ``d``; its
rounding error is at most ``gamma * sum_i |x_i| |W_vi|`` with the probabilistic
``gamma = sqrt(d) * eps`` (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.5-3.6);
the log-normaliser moves by at most the largest logit error plus ``eps * (|max logit| + log V)``;
two implementations of one log-prob are within ``4 delta``. ``eps`` is that of the dtype the
compared logits were computed in (the model's own logits in bf16 are rounded in bf16).

Residual-stream states: each block adds a few matrix products of length ``d`` to the stream,
each within ``sqrt(d) * eps`` of its exact value relative to the stream's scale, so two forwards
that only order sums differently (another batch width, padding) agree at block ``l`` within
``K * (l + 1) * sqrt(d) * eps`` relative to ``max |h|`` with ``K = 8`` products per block
(attention q, k, v, o, scores, mixing; MLP in, out) counted once each. A real defect (padding
read as tokens, a wrong position, a hook left behind) moves states by 1e-2 relative or more.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Matrix products per block counted in the state bound (see the module docstring).
PRODUCTS_PER_BLOCK = 8


def eps_of(dtype: torch.dtype) -> float:
    """Machine epsilon of a floating dtype."""
    return float(torch.finfo(dtype).eps)


def logprob_bound(normed: Tensor, weight: Tensor, *, eps: float) -> float:
    """Bound on |difference| of two implementations of the log-probs of rows ``normed``.

    Args:
        normed: Rows as unembedded (after the final norm where it applies), ``(..., d)``.
        weight: The unembedding, ``(V, d)``.
        eps: Machine epsilon of the coarser of the two computations.
    """
    x = normed.detach().reshape(-1, normed.shape[-1]).double()
    w = weight.detach()
    condition = 0.0
    largest = 0.0
    for start in range(0, w.shape[0], 32768):  # bounded memory over large vocabularies
        chunk = w[start : start + 32768].double()
        condition = max(condition, float((x.abs() @ chunk.abs().T).max()))
        largest = max(largest, float((x @ chunk.T).abs().max()))
    d, vocab = x.shape[-1], w.shape[0]
    delta = math.sqrt(d) * eps * condition + eps * (largest + math.log(vocab))
    return 4.0 * delta


def state_bound(layer: int, d_model: int, *, eps: float) -> float:
    """Relative bound on two forwards' states at block ``layer`` (0-based) that differ in order."""
    return PRODUCTS_PER_BLOCK * (layer + 1) * math.sqrt(d_model) * eps


def relative_difference(a: Tensor, b: Tensor) -> float:
    """``max |a - b| / max |b|`` in float64 (0 when both are zero)."""
    a64, b64 = a.detach().double(), b.detach().double()
    scale = float(b64.abs().max()) if b64.numel() else 0.0
    diff = float((a64 - b64).abs().max()) if b64.numel() else 0.0
    return diff / scale if scale > 0 else diff
