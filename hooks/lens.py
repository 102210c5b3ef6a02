"""Lenses: read residual-stream rows of any layer as next-token log-probs.

A lens is a per-layer row transform followed by the model's own unembedding
(:class:`hublens.hooks.readout.Unembed`, the only place logits are computed). The logit lens
transforms nothing; a tuned or Jacobian lens is one small subclass of :class:`Lens` that
overrides :meth:`Lens.transform` (e.g. a per-layer affine map or a d x d transport).

The last-layer rule: a lens built with ``final_norm=False`` (the semantic hub paper's choice)
still applies the model's final norm to rows of the model's LAST layer (``resid_post`` of
block ``n_layers - 1``), so that the last layer reads the model's own log-probs under every
setting. The lens can only know which rows those are when the caller says so with
``layer=`` (and the lens knows ``n_layers``, as :meth:`LogitLens.from_model` records);
without ``layer`` every row is read with the lens's own setting.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, SupportsIndex

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hublens.hooks.readout import CHUNK_ELEMENTS, Unembed

#: What ``layer=`` takes: one layer for every row, one per leading entry of ``h``, or None.
LayerArg = SupportsIndex | Sequence[SupportsIndex] | None


@dataclass(frozen=True)
class LensReadout:
    """What a lens read off some rows.

    Attributes:
        target_logprobs: Log-probs of the requested token ids, ``(*rows, n_targets)``.
        top_ids: Ids of the top-k tokens, ``(*rows, k)`` (k may be 0).
        top_logprobs: Their log-probs.
        logsumexp: The log-normaliser of each row.
        final_norm: Whether the final norm was applied before unembedding.
        last_layer_norm: Whether rows marked (``layer=``) as the model's last layer were read
            through the final norm although ``final_norm`` is False (the last-layer rule).
    """

    target_logprobs: Float[Tensor, "*rows n_targets"] | None
    top_ids: Int[Tensor, "*rows k"]
    top_logprobs: Float[Tensor, "*rows k"]
    logsumexp: Float[Tensor, "*rows"]
    final_norm: bool
    last_layer_norm: bool = False


class Lens:
    """Base lens: :meth:`transform` rows per layer, then the shared unembedding.

    Args:
        unembed: The model's unembedding (final norm, W_U, bias, soft-cap).
        final_norm: Apply the final norm to every row (Wendler et al.) or only to rows of the
            model's last layer (the semantic hub paper). Ignored (False) when the model has
            no final norm.
        n_layers: The model's number of blocks, which the last-layer rule needs; None turns
            the rule off.

    Example:
        A per-layer affine lens is one override (the unembedding and the rule are shared):

        >>> class AffineLens(Lens):  # doctest: +SKIP
        ...     def __init__(self, unembed, weight, bias, n_layers):
        ...         super().__init__(unembed, final_norm=False, n_layers=n_layers)
        ...         self.weight_l, self.bias_l = weight, bias  # (L, d, d), (L, d)
        ...     def transform(self, h, layer):
        ...         return h + h @ self.weight_l[layer] + self.bias_l[layer]
        >>> AffineLens(Unembed.from_model(model), a, b, model.n_layers).readout(  # doctest: +SKIP
        ...     h, [42], layer=range(model.n_layers))
    """

    def __init__(self, unembed: Unembed, *, final_norm: bool, n_layers: int | None) -> None:
        self.unembed = unembed
        self.final_norm = bool(final_norm) and unembed.norm is not None
        self.n_layers = n_layers

    def transform(self, h: Float[Tensor, "rows d_model"], layer: int | None) -> Tensor:
        """Map rows of ``layer`` before the unembedding (identity here; override it).

        Args:
            h: Rows of one layer (or of unknown layers when ``layer`` is None).
            layer: Their layer index, non-negative, or None when the caller gave none.
        """
        return h

    # Views of the unembedding, for code that reads them off the lens.
    @property
    def weight(self) -> Float[Tensor, "d_vocab d_model"]:
        """Unembedding rows (the model's own tensor)."""
        return self.unembed.weight

    @property
    def bias(self) -> Float[Tensor, " d_vocab"] | None:
        """Unembedding bias or None."""
        return self.unembed.bias

    @property
    def norm(self) -> torch.nn.Module | None:
        """The model's final norm module (kept also when ``final_norm`` is False)."""
        return self.unembed.norm

    @property
    def softcap(self) -> float | None:
        """Final-logit soft-capping, or None."""
        return self.unembed.softcap

    @property
    def max_chunk_elements(self) -> int:
        """Memory bound: logits held at once (rows x vocabulary chunk)."""
        return self.unembed.max_chunk_elements

    @max_chunk_elements.setter
    def max_chunk_elements(self, value: int) -> None:
        self.unembed.max_chunk_elements = value

    @property
    def d_vocab(self) -> int:
        """Vocabulary size."""
        return self.unembed.d_vocab

    @property
    def last_layer_norm(self) -> bool:
        """Whether rows marked as the model's last layer are read through the final norm."""
        return self.unembed.norm is not None and (self.final_norm or self.n_layers is not None)

    def _layers(self, h: Tensor, layer: LayerArg) -> list[int] | int | None:
        """Validate ``layer``: one non-negative index, one per ``h[i]``, or None."""
        if layer is None:
            return None
        value_or_values: Any = layer.tolist() if hasattr(layer, "tolist") else layer
        single = not isinstance(value_or_values, Sequence)  # numpy/torch became int or list
        items: list[Any] = [value_or_values] if single else list(value_or_values)
        n = self.n_layers
        out = []
        for value in items:
            if isinstance(value, bool) or isinstance(value, float):
                raise TypeError(f"layer contains {value!r}; pass int layer indices.")
            try:
                index = operator.index(value)
            except TypeError:
                raise TypeError(f"layer contains {value!r}; pass int layer indices.") from None
            if n is not None and not -n <= index < n:
                raise ValueError(f"layer={index} is out of range: valid layers are 0..{n - 1}.")
            if n is None and index < 0:
                raise ValueError(
                    f"layer={index}: negative layers need n_layers; build the lens with "
                    "LogitLens.from_model or pass n_layers."
                )
            out.append(index % n if n is not None else index)
        if single:
            return out[0]
        if h.ndim < 2 or len(out) != h.shape[0]:
            raise ValueError(
                f"layer has {len(out)} entries but h has shape {tuple(h.shape)}; pass one layer "
                "per h[i] (h of shape (n_layers, ..., d_model)) or a single int."
            )
        return out

    def _prepare(self, h: Tensor, layer: LayerArg = None) -> tuple[Tensor, bool]:
        """Flat fp32 rows ready for the unembedding, and whether the last-layer rule fired."""
        d_model = self.unembed.d_model
        if h.shape[-1] != d_model:
            raise ValueError(
                f"The lens expects rows of width d_model={d_model}; got shape {tuple(h.shape)}."
            )
        layers = self._layers(h, layer)
        identity = type(self).transform is Lens.transform
        if isinstance(layers, list):
            per_block = h.reshape(len(layers), -1, d_model)
            row_layer: Tensor | None = torch.tensor(layers).repeat_interleave(per_block.shape[1])
            if identity:
                x = per_block.reshape(-1, d_model)
            else:
                blocks = zip(per_block, layers, strict=True)
                x = torch.cat([self.transform(b, i) for b, i in blocks])
        else:
            x = h.reshape(-1, d_model)
            row_layer = None if layers is None else torch.full((x.shape[0],), layers)
            x = x if identity else self.transform(x, layers)
        if self.final_norm:
            normed = torch.ones(x.shape[0], dtype=torch.bool)
        elif row_layer is not None and self.n_layers is not None and self.norm is not None:
            normed = row_layer == self.n_layers - 1
        else:
            normed = torch.zeros(x.shape[0], dtype=torch.bool)
        rule = not self.final_norm and bool(normed.any())
        return self.unembed.prepare(x, normed), rule

    def _finite(self, h: Tensor, layer: LayerArg) -> tuple[Tensor, bool]:
        x, rule = self._prepare(h, layer)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("The lens got NaN or infinite hidden states; check the inputs.")
        return x, rule

    def logits(
        self, h: Float[Tensor, "*rows d_model"], *, layer: LayerArg = None
    ) -> Float[Tensor, "*rows d_vocab"]:
        """Full-vocabulary fp32 logits, differentiable (for training through the lens)."""
        x, _ = self._prepare(h, layer)
        return self.unembed.logits(x).reshape(*h.shape[:-1], self.d_vocab)

    @torch.no_grad()
    def logprobs(
        self, h: Float[Tensor, "*rows d_model"], *, layer: LayerArg = None
    ) -> Float[Tensor, "*rows d_vocab"]:
        """Full-vocabulary log-probs (memory grows with the vocabulary; for small inputs)."""
        x, _ = self._prepare(h, layer)
        return self.unembed.logprobs(x).reshape(*h.shape[:-1], self.d_vocab)

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
        layer: LayerArg = None,
    ) -> LensReadout:
        """Log-probs of selected tokens (and the top-k) at each row.

        Args:
            h: Residual-stream rows, any leading shape.
            token_ids: Ids to read: ``(n_targets,)`` for every row, or one set per row with
                the same leading shape as ``h``. None reads no targets.
            top_k: How many most-likely tokens to return per row.
            layer: The layer of the rows: one int for all, or one per ``h[i]`` when ``h`` is
                ``(n_layers, ..., d_model)``. It selects the per-layer transform and lets the
                last-layer rule read the model's last layer through the final norm.

        Returns:
            The readout, fp32, on the unembedding's device.

        Raises:
            ValueError: Width mismatch, ids outside the vocabulary, negative ``top_k``, bad
                ``layer``, or non-finite rows.
        """
        if top_k < 0 or top_k > self.d_vocab:
            raise ValueError(f"top_k={top_k}: choose 0..{self.d_vocab}.")
        lead = h.shape[:-1]
        ids = None
        if token_ids is not None:
            ids = self._check_ids(torch.as_tensor(token_ids, device=self.weight.device), lead)
            if ids.ndim > 1:
                ids = ids.reshape(-1, ids.shape[-1])
        x, rule = self._finite(h, layer)
        flat = self.unembed.readout(x, ids, top_k)
        target = flat.target_logprobs
        return LensReadout(
            target_logprobs=None if target is None else target.reshape(*lead, -1),
            top_ids=flat.top_ids.reshape(*lead, -1),
            top_logprobs=flat.top_logprobs.reshape(*lead, -1),
            logsumexp=flat.logsumexp.reshape(lead),
            final_norm=self.final_norm,
            last_layer_norm=rule,
        )

    @torch.no_grad()
    def expectation(
        self,
        h: Float[Tensor, "*rows d_model"],
        values: Float[Tensor, "d_vocab n_values"],
        *,
        layer: LayerArg = None,
    ) -> Float[Tensor, "*rows n_values"]:
        """Expected value of per-token vectors under the lens distribution, memory-bounded.

        Computes ``sum_v p_lens(v | h) * values[v, :]`` for every row, fp32 (see
        :meth:`Unembed.expectation`).

        Args:
            h: Residual-stream rows, any leading shape.
            values: One vector per vocabulary entry, ``(d_vocab, n_values)``.
            layer: The layer of the rows, as in :meth:`readout`.

        Returns:
            ``(*rows, n_values)``, fp32, on the unembedding's device.

        Raises:
            ValueError: Width mismatch, ``values`` not ``(d_vocab, n_values)`` or not finite,
                bad ``layer``, or non-finite rows.
        """
        if values.ndim != 2 or values.shape[0] != self.d_vocab:
            raise ValueError(
                f"values must be (d_vocab={self.d_vocab}, n_values); got {tuple(values.shape)}."
            )
        vals = values.to(device=self.weight.device, dtype=torch.float32)
        if not bool(torch.isfinite(vals).all()):
            raise ValueError("values contains NaN or infinite entries.")
        x, _ = self._finite(h, layer)
        return self.unembed.expectation(x, vals).reshape(*h.shape[:-1], vals.shape[1])

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


class LogitLens(Lens):
    """Logit lens: the model's unembedding applied to raw (or final-normed) residual rows.

    Args:
        weight: Unembedding rows, ``(d_vocab, d_model)`` (the model's own tensor, not copied).
        bias: Unembedding bias or None.
        norm: The final norm module, or None.
        softcap: Final-logit soft-capping, or None.
        max_chunk_elements: Memory bound: logits held at once (rows x vocabulary chunk).
        final_norm: Apply ``norm`` to every row; None means "if ``norm`` is given".
        n_layers: The model's number of blocks (for the last-layer rule), or None.

    Example:
        >>> lens = LogitLens.from_model(model, final_norm=False)  # doctest: +SKIP
        >>> lens.readout(h, [42], layer=range(model.n_layers)).target_logprobs  # doctest: +SKIP
    """

    def __init__(
        self,
        weight: Float[Tensor, "d_vocab d_model"],
        bias: Float[Tensor, " d_vocab"] | None = None,
        norm: torch.nn.Module | None = None,
        softcap: float | None = None,
        max_chunk_elements: int = CHUNK_ELEMENTS,
        *,
        final_norm: bool | None = None,
        n_layers: int | None = None,
    ) -> None:
        unembed = Unembed(weight, bias, norm, softcap, max_chunk_elements)
        super().__init__(
            unembed,
            final_norm=norm is not None if final_norm is None else final_norm,
            n_layers=n_layers,
        )

    @classmethod
    def from_model(cls, model: Any, *, final_norm: bool = True) -> LogitLens:
        """Build the lens of a HubModel (it remembers ``model.n_layers``).

        Args:
            model: The HubModel.
            final_norm: Apply the model's final norm to every row (Wendler et al.; the
                default) or only to rows of the last layer (the semantic hub paper's code,
                which reads the last layer as the model's normed output).
        """
        return cls(
            weight=model.unembedding_weight,
            bias=model.unembedding_bias,
            norm=model.final_norm,
            softcap=model.logit_softcap,
            final_norm=final_norm,
            n_layers=int(model.n_layers),
        )

    def __repr__(self) -> str:
        return (
            f"LogitLens(d_vocab={self.d_vocab}, final_norm={self.final_norm}, "
            f"n_layers={self.n_layers}, softcap={self.softcap})"
        )
