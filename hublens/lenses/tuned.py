"""The tuned lens (Belrose et al., 2023): a per-layer affine translator before the unembedding.

Layer ``l``'s rows are read as ``unembed(final_norm(h + h @ A_l.T + b_l))``. ``A`` and ``b``
zero is the logit lens with the final norm (the tuned-lens recipe initialises there); the
model's last layer (``n_layers - 1``) has no translator, so the tuned lens reads the model's
own log-probs there exactly. Fitting lives in :mod:`hublens.lenses.fit_tuned`; the tensors are
stored as a lens folder (:mod:`hublens.lenses.artifact`): ``weight`` ``(n_layers - 1, d, d)``
and ``bias`` ``(n_layers - 1, d)``, fp16 for the shipped lenses.

Example:
    >>> lens = TunedLens.for_model(model)  # doctest: +SKIP
    >>> lens.readout(h, [42], layer=range(model.n_layers)).target_logprobs  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from hublens.hooks.lens import Lens
from hublens.hooks.readout import Unembed
from hublens.lenses.artifact import (
    LensArtifactError,
    ModelFingerprint,
    load_artifact,
    save_artifact,
)


class TunedLens(Lens):
    """Per-layer affine translators ``h + h @ A_l.T + b_l``, final norm, the model's W_U.

    Args:
        unembed: The model's unembedding.
        weight: ``A_l`` for layers ``0 .. n_layers - 2``.
        bias: ``b_l`` for the same layers.
        fingerprint: The model the lens belongs to.
        fit: The fit record (command, corpus, seed, held-out KL, ...), JSON-ready.
        folder: The folder it was loaded from, if any.
    """

    kind: ClassVar[str] = "tuned"

    def __init__(
        self,
        unembed: Unembed,
        weight: Float[Tensor, "n_fitted d_model d_model"],
        bias: Float[Tensor, "n_fitted d_model"],
        *,
        fingerprint: ModelFingerprint,
        fit: dict[str, Any] | None = None,
        folder: Path | None = None,
    ) -> None:
        n_layers = fingerprint.n_layers
        d = unembed.d_model
        if tuple(weight.shape) != (n_layers - 1, d, d) or tuple(bias.shape) != (n_layers - 1, d):
            raise ValueError(
                f"A tuned lens of a {n_layers}-layer, d_model={d} model needs weight "
                f"({n_layers - 1}, {d}, {d}) and bias ({n_layers - 1}, {d}); got "
                f"{tuple(weight.shape)} and {tuple(bias.shape)}."
            )
        super().__init__(unembed, final_norm=True, n_layers=n_layers)
        device = unembed.weight.device
        self.translator_weight = weight.detach().to(device=device, dtype=torch.float32)
        self.translator_bias = bias.detach().to(device=device, dtype=torch.float32)
        self.fingerprint = fingerprint
        self.fit = dict(fit or {})
        self.folder = folder
        self.name = "tuned"

    @classmethod
    def identity(cls, model: Any) -> TunedLens:
        """The untrained lens (A, b zero): the logit lens with the final norm."""
        n, d = int(model.n_layers), int(model.d_model)
        return cls(
            Unembed.from_model(model),
            torch.zeros(n - 1, d, d),
            torch.zeros(n - 1, d),
            fingerprint=ModelFingerprint.from_model(model),
        )

    def transform(self, h: Float[Tensor, "rows d_model"], layer: int | None) -> Tensor:
        """``h + h @ A_layer.T + b_layer``; the identity at the model's last layer.

        Raises:
            ValueError: ``layer`` is None (a tuned lens reads each layer with its own map).
        """
        if layer is None:
            raise ValueError(
                "A tuned lens needs the rows' layer: pass layer= to readout/logprobs/logits."
            )
        if layer == self.fingerprint.n_layers - 1:
            return h
        x = h.to(device=self.translator_weight.device, dtype=torch.float32)
        return x + x @ self.translator_weight[layer].T + self.translator_bias[layer]

    def save(self, folder: str | os.PathLike[str], *, dtype: torch.dtype = torch.float16) -> Path:
        """Write the lens folder (tensors in ``dtype``, fp16 by default) atomically."""
        tensors = {
            "weight": self.translator_weight.to(dtype),
            "bias": self.translator_bias.to(dtype),
        }
        config = {
            "kind": self.kind,
            "model": self.fingerprint.to_dict(),
            "translator": "h + h @ weight[l].T + bias[l], then the final norm and W_U",
            "final_norm": True,
            "identity_layers": [self.fingerprint.n_layers - 1],
            "dtype": str(dtype).removeprefix("torch."),
            "fit": self.fit,
        }
        path = save_artifact(folder, tensors, config)
        self.folder = path
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike[str], model: Any) -> TunedLens:
        """Read a tuned lens folder for ``model`` (every check before any tensor is used).

        Raises:
            LensArtifactError: Missing/corrupt folder, another kind, another model, or
                tensors of the wrong shape.
        """
        tensors, config = load_artifact(folder, model=model)
        if config["kind"] != cls.kind:
            raise LensArtifactError(
                f"{folder} holds a {config['kind']!r} lens, not a tuned lens; load it with "
                "resolve_lenses(model, path) or the class of its kind."
            )
        if set(tensors) != {"weight", "bias"}:
            raise LensArtifactError(
                f"{folder}: a tuned lens holds tensors 'weight' and 'bias'; "
                f"found {sorted(tensors)}."
            )
        try:
            return cls(
                Unembed.from_model(model),
                tensors["weight"],
                tensors["bias"],
                fingerprint=ModelFingerprint.from_model(model),
                fit=config.get("fit") or {},
                folder=Path(folder),
            )
        except ValueError as exc:
            raise LensArtifactError(f"{folder}: {exc}") from None

    @classmethod
    def for_model(cls, model: Any) -> TunedLens:
        """The tuned lens of ``model``: shipped with the package, else fitted into the cache.

        Raises:
            LensArtifactError: No lens was found (the message gives the fit command).
        """
        from hublens.lenses.store import find_lens, missing_lens_message

        folder = find_lens(model, cls.kind)
        if folder is None:
            raise LensArtifactError(missing_lens_message(model, cls.kind))
        return cls.load(folder, model)

    def provenance(self) -> dict[str, Any]:
        """Kind, corpus, fit command, seed, sizes, held-out KL per layer, tensors' sha256."""
        fit = self.fit
        corpus = fit.get("corpus") or {}
        tensors_sha = None
        if self.folder is not None:
            from hublens.lenses.artifact import read_config

            tensors_sha = read_config(self.folder).get("tensors_sha256")
        return {
            "kind": self.kind,
            "corpus": corpus.get("name"),
            "corpus_sha256": corpus.get("sha256"),
            "corpus_languages": corpus.get("languages"),
            "command": fit.get("command"),
            "seed": fit.get("seed"),
            "n_tokens": fit.get("n_train_tokens"),
            "held_out_kl": (fit.get("held_out") or {}).get("tuned"),
            "held_out_kl_logit": (fit.get("held_out") or {}).get("logit"),
            "training_vocabulary": fit.get("training_vocabulary"),
            "tensors_sha256": tensors_sha,
            "folder": None if self.folder is None else str(self.folder),
        }

    def __repr__(self) -> str:
        return (
            f"TunedLens(n_layers={self.fingerprint.n_layers}, d_model={self.unembed.d_model}, "
            f"model={self.fingerprint.name!r})"
        )
