"""The Jacobian lens: TransformerLens 4.3's ``JacobianLens`` read through hublens's readout core.

TransformerLens fits, merges and transports (:class:`transformer_lens.tools.analysis.JacobianLens`);
this module only adapts it to :class:`hublens.hooks.lens.Lens`: ``transform(h, l)`` is
``tl_lens.transport(h, l)`` (``h @ J[l].T`` in fp32) for every fitted layer and the identity at
the model's last layer, and the final norm is applied to every row, as TL's own ``readout``
does (``lens(h_l) = W_U norm(J_l h_l)``). The unembedding, the chunking and the soft-cap are the
shared :class:`hublens.hooks.readout.Unembed`.

Layer convention: TL's ``J[l]`` maps ``blocks.{l}.hook_out`` (the output of block ``l``) to the
last block's output before the final norm. hublens's ``resid_post`` of block ``l`` is the same
tensor (``blocks.{l}.hook_resid_post`` is the bridge's alias of ``hook_out``; a unit test
checks it against the HF model's hidden states).

Artifacts are hublens lens folders (:mod:`hublens.lenses.artifact`: safetensors + JSON, the TL
metadata kept under ``tl.metadata``). A published TL / reference ``.pt`` file is read only by
:func:`convert_pt`, on explicit request, through TL's own ``JacobianLens.load``
(``torch.load(weights_only=True)``); every other path refuses pickles unopened.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from hublens.cache import sha256_file
from hublens.hooks.lens import Lens
from hublens.hooks.readout import Unembed
from hublens.lenses.artifact import (
    LensArtifactError,
    ModelFingerprint,
    load_artifact,
    save_artifact,
)

KIND = "jacobian"


def _tensor_name(layer: int) -> str:
    return f"J.{layer}"


class JacobianLensView(Lens):
    """A fitted TransformerLens Jacobian lens as a hublens :class:`Lens`.

    Build it with :meth:`from_tl` (a lens TL just fitted or merged), :meth:`load` (a hublens
    lens folder), :meth:`for_model` (the shipped or cached lens of a model) or
    :func:`convert_pt` (a published ``.pt``).

    Attributes:
        tl_lens: The TransformerLens ``JacobianLens`` (its ``jacobians`` are the matrices read).
        fingerprint: The model the lens belongs to.
        fit: The fit record (command, corpus, sizes, time, quality curve), JSON-ready.
        folder: The folder it was loaded from or saved to, or None.

    Example:
        >>> lens = JacobianLensView.for_model(model)  # doctest: +SKIP
        >>> lens.readout(h, top_k=5, layer=8).top_ids  # doctest: +SKIP
    """

    kind = KIND
    name = KIND

    def __init__(
        self,
        tl_lens: Any,
        unembed: Unembed,
        *,
        n_layers: int,
        fingerprint: ModelFingerprint,
        fit: dict[str, Any] | None = None,
        folder: Path | None = None,
    ) -> None:
        super().__init__(unembed, final_norm=True, n_layers=n_layers)
        self.tl_lens = tl_lens
        self.fingerprint = fingerprint
        self.fit = dict(fit or {})
        self.folder = folder

    # ------------------------------------------------------------------ building
    @classmethod
    def from_tl(
        cls,
        tl_lens: Any,
        model: Any,
        *,
        fit: dict[str, Any] | None = None,
        folder: Path | None = None,
    ) -> JacobianLensView:
        """Wrap a TL ``JacobianLens`` for a HubModel, after TL's own model validation.

        Args:
            tl_lens: A ``transformer_lens.tools.analysis.JacobianLens``.
            model: The HubModel (its raw bridge is what TL validates against).
            fit: The fit record to keep with the lens.
            folder: Where the lens lives on disk, if anywhere.

        Raises:
            LensArtifactError: The lens does not fit this model (d_model, layers, TL's
                recorded model name or revision), naming what differs.
        """
        from transformer_lens.tools.analysis import JacobianLens

        if not isinstance(tl_lens, JacobianLens):
            raise TypeError(
                f"tl_lens is a {type(tl_lens).__name__}; pass a "
                "transformer_lens.tools.analysis.JacobianLens (fit, merge or load one)."
            )
        n_layers = int(model.n_layers)
        if tl_lens.d_model != int(model.d_model):
            raise LensArtifactError(
                f"The Jacobian lens has d_model={tl_lens.d_model}; this model has "
                f"d_model={model.d_model}. Use a lens fitted on this model (hublens fit-lens)."
            )
        wanted = list(range(n_layers - 1))
        if tl_lens.source_layers != wanted:
            raise LensArtifactError(
                f"The Jacobian lens has source layers {tl_lens.source_layers}; a lens for this "
                f"{n_layers}-layer model needs layers 0..{n_layers - 2} (the last is the "
                "identity). Use a lens fitted on this model (hublens fit-lens)."
            )
        try:
            tl_lens.validate_model(model.bridge)
        except (TypeError, ValueError) as exc:
            raise LensArtifactError(f"TransformerLens refused the Jacobian lens: {exc}") from None
        return cls(
            tl_lens,
            Unembed.from_model(model),
            n_layers=n_layers,
            fingerprint=ModelFingerprint.from_model(model),
            fit=fit,
            folder=folder,
        )

    @classmethod
    def load(cls, folder: str | os.PathLike[str], model: Any) -> JacobianLensView:
        """Read a hublens Jacobian lens folder for ``model`` (every check before any use).

        Raises:
            LensArtifactError: Missing or corrupt files, a pickle, another kind, or a lens
                for another model (fingerprint or TL validation).
        """
        from transformer_lens.tools.analysis import JacobianLens

        path = Path(folder)
        tensors, config = load_artifact(path, model=model)
        if config["kind"] != KIND:
            raise LensArtifactError(
                f"{path} holds a {config['kind']!r} lens; JacobianLensView reads 'jacobian' "
                "lenses (use hublens.lenses.resolve for any kind)."
            )
        tl = config.get("tl")
        if not isinstance(tl, dict) or not isinstance(tl.get("source_layers"), list):
            raise LensArtifactError(f"{path}/lens.json has no 'tl' entry; refit the lens.")
        layers = [int(x) for x in tl["source_layers"]]
        names = sorted(_tensor_name(x) for x in layers)
        if sorted(tensors) != names:
            raise LensArtifactError(
                f"{path}: tensors {sorted(tensors)} do not match the recorded source layers "
                f"{layers}; refit or restore the lens."
            )
        tl_lens = JacobianLens(
            {x: tensors[_tensor_name(x)] for x in layers},
            n_prompts=int(tl["n_prompts"]),
            d_model=int(tl["d_model"]),
            metadata=dict(tl.get("metadata") or {}),
        )
        return cls.from_tl(tl_lens, model, fit=dict(config.get("fit") or {}), folder=path)

    @classmethod
    def for_model(cls, model: Any) -> JacobianLensView:
        """The Jacobian lens shipped with, or fitted into the cache for, ``model``.

        Raises:
            LensArtifactError: No lens found (the message gives the ``hublens fit-lens``
                command), or the lens found does not fit the model.
        """
        from hublens.lenses.store import find_lens, missing_lens_message

        folder = find_lens(model, KIND)
        if folder is None:
            raise LensArtifactError(missing_lens_message(model, KIND))
        return cls.load(folder, model)

    # ------------------------------------------------------------------ saving
    def save(self, folder: str | os.PathLike[str], *, dtype: torch.dtype = torch.float16) -> Path:
        """Write the lens as a hublens folder (safetensors + JSON, TL metadata kept).

        Args:
            folder: The lens folder (replaced atomically).
            dtype: Storage dtype of the matrices; fp16 as TL's and the reference's artifacts.
        """
        tl = self.tl_lens
        tensors = {_tensor_name(x): m.to(dtype) for x, m in tl.jacobians.items()}
        config = {
            "kind": KIND,
            "model": self.fingerprint.to_dict(),
            "tl": {
                "class": "transformer_lens.tools.analysis.JacobianLens",
                "n_prompts": int(tl.n_prompts),
                "d_model": int(tl.d_model),
                "source_layers": [int(x) for x in tl.source_layers],
                "metadata": tl.metadata,
                "dtype": str(dtype).removeprefix("torch."),
            },
            "fit": self.fit,
        }
        self.folder = save_artifact(folder, tensors, config)
        return self.folder

    # ------------------------------------------------------------------ reading
    def transform(self, h: Float[Tensor, "rows d_model"], layer: int | None) -> Tensor:
        """``J[layer]`` transport (TL's ``transport``); identity at the model's last layer.

        Raises:
            ValueError: ``layer`` missing (the lens is per layer) or not fitted.
        """
        if layer is None:
            raise ValueError(
                "The Jacobian lens transports each layer with its own matrix: pass layer= "
                "to readout/logprobs (the block whose resid_post the rows are)."
            )
        last = int(self.n_layers or 0) - 1
        if layer == last:
            return h
        if layer not in self.tl_lens.jacobians:
            raise ValueError(
                f"layer={layer} has no Jacobian matrix; fitted layers are "
                f"{self.tl_lens.source_layers} (+{last} as the identity)."
            )
        return self.tl_lens.transport(h, layer)

    def provenance(self) -> dict[str, Any]:
        """Kind, corpus and its sha256, fit command, seed, sizes, quality, tensors sha256."""
        fit = self.fit
        tensors = None
        if self.folder is not None and (self.folder / "lens.safetensors").is_file():
            tensors = sha256_file(self.folder / "lens.safetensors")
        return {
            "kind": KIND,
            "corpus": fit.get("corpus", {}).get("name", self.tl_lens.metadata.get("corpus")),
            "corpus_sha256": fit.get("corpus", {}).get("sha256"),
            "fit_command": fit.get("command"),
            "seed": fit.get("seed"),
            "n_prompts": int(self.tl_lens.n_prompts),
            "n_tokens": fit.get("n_tokens"),
            "heldout_kl": fit.get("heldout_kl"),
            "tensors_sha256": tensors,
            "folder": None if self.folder is None else str(self.folder),
        }

    def __repr__(self) -> str:
        return (
            f"JacobianLensView(layers=0..{(self.n_layers or 1) - 1}, "
            f"n_prompts={self.tl_lens.n_prompts}, d_model={self.tl_lens.d_model})"
        )


def convert_pt(
    path: str | os.PathLike[str], model: Any, out: str | os.PathLike[str]
) -> JacobianLensView:
    """Convert a published TL / reference Jacobian-lens ``.pt`` into a hublens lens folder.

    The only place hublens opens a ``.pt`` lens: TL's ``JacobianLens.load`` reads it with
    ``torch.load(weights_only=True)`` (tensors and plain containers, no code), the lens is
    validated against ``model``, and written as safetensors + JSON to ``out``.

    Args:
        path: The ``.pt`` file (artifact or reference fit checkpoint).
        model: The HubModel it was fitted on.
        out: The lens folder to write.

    Raises:
        LensArtifactError: Unreadable file, or a lens for another model.
    """
    from transformer_lens.tools.analysis import JacobianLens

    source = Path(path)
    if not source.is_file():
        raise LensArtifactError(f"convert_pt: {source} is not a file; pass the .pt to convert.")
    try:
        tl_lens = JacobianLens.load(str(source))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise LensArtifactError(
            f"convert_pt: {source} is not a Jacobian-lens artifact TransformerLens can read "
            f"with weights_only=True ({type(exc).__name__}: {exc})."
        ) from None
    fit = {
        "converted_from": {"path": str(source), "sha256": sha256_file(source)},
        "corpus": {"name": tl_lens.metadata.get("corpus")},
        "command": f"hublens fit-lens --kind jacobian --convert {source}",
    }
    view = JacobianLensView.from_tl(tl_lens, model, fit=fit)
    view.save(out)
    return view
