"""Fitted-lens artifacts: one safetensors file plus one JSON config, never a pickle.

Every fitted lens (tuned, Jacobian) is saved as a folder::

    lens.safetensors   the tensors (fp16 or fp32), read with safetensors' own parser
    lens.json          kind, format version, the model's fingerprint, the fit record
                       (command, corpus and its sha256, seed, held-out KL per layer, ...)
                       and the sha256 of lens.safetensors

Loading checks, before any tensor is used: the folder holds the two files (a ``.pt`` or
``.bin`` is refused unopened, with the way to convert it), the JSON parses and names a known
kind and format version, the safetensors file has the recorded sha256, and the lens's model
fingerprint (d_model, n_layers, d_vocab, and the weights' sha256 where both sides know it)
matches the model it is used with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hublens.atomic import atomic_path
from hublens.cache import sha256_file
from hublens.errors import HublensError

#: File names inside a lens folder.
TENSORS = "lens.safetensors"
CONFIG = "lens.json"
#: Bumped when the layout of lens.json or the tensor names change.
FORMAT_VERSION = 1
#: Kinds of fitted lens this format stores.
KINDS = ("tuned", "jacobian")
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


class LensArtifactError(HublensError, ValueError):
    """A lens folder that is missing, corrupt, of an unknown kind, or for another model."""


@dataclass(frozen=True)
class ModelFingerprint:
    """What identifies the model a lens was fitted on.

    Attributes:
        name: The name the model was loaded under (bundled name, path, ...).
        d_model: Residual width.
        n_layers: Number of blocks.
        d_vocab: Vocabulary size.
        weights_sha256: sha256 of the model's safetensors weights, when known.
    """

    name: str
    d_model: int
    n_layers: int
    d_vocab: int
    weights_sha256: str | None = None

    @classmethod
    def from_model(cls, model: Any) -> ModelFingerprint:
        """The fingerprint of a HubModel."""
        provenance = getattr(model, "provenance", None)
        return cls(
            name=str(getattr(provenance, "name", "object")),
            d_model=int(model.d_model),
            n_layers=int(model.n_layers),
            d_vocab=int(model.d_vocab),
            weights_sha256=getattr(provenance, "weights_sha256", None),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)

    def check(self, recorded: Mapping[str, Any], *, what: str) -> None:
        """Refuse a lens whose recorded fingerprint differs from this model's.

        Shapes must agree; the weights' sha256 must agree when both sides know it (a lens
        fitted on an in-memory model records none and is then checked by shape only).

        Args:
            recorded: The ``model`` entry of the lens's JSON.
            what: How to name the lens in the error (e.g. its folder).

        Raises:
            LensArtifactError: Naming the field that differs and both values.
        """
        for key in ("d_model", "n_layers", "d_vocab"):
            if int(recorded.get(key, -1)) != getattr(self, key):
                raise LensArtifactError(
                    f"{what} was fitted on a model with {key}={recorded.get(key)!r} "
                    f"({recorded.get('name')!r}); this model has {key}={getattr(self, key)} "
                    f"({self.name!r}). Use a lens fitted on this model (hublens fit-lens)."
                )
        theirs = recorded.get("weights_sha256")
        if theirs and self.weights_sha256 and theirs != self.weights_sha256:
            raise LensArtifactError(
                f"{what} was fitted on weights with sha256 {theirs[:12]}… "
                f"({recorded.get('name')!r}); this model's weights have "
                f"{self.weights_sha256[:12]}… ({self.name!r}). Use a lens fitted on these "
                "weights (hublens fit-lens)."
            )


def save_artifact(
    directory: str | os.PathLike[str],
    tensors: Mapping[str, Tensor],
    config: Mapping[str, Any],
) -> Path:
    """Write a lens folder atomically (it appears complete or not at all).

    Args:
        directory: The folder to create or replace.
        tensors: Named tensors, stored contiguous on CPU in their own dtype.
        config: JSON-ready config; must hold ``kind`` (one of :data:`KINDS`) and ``model``
            (a :meth:`ModelFingerprint.to_dict`). ``format_version`` and the tensors'
            sha256 are added here.

    Returns:
        The folder's path.
    """
    from safetensors.torch import save_file

    kind = config.get("kind")
    if kind not in KINDS:
        raise ValueError(f"config['kind']={kind!r}: choose one of {', '.join(KINDS)}.")
    if not isinstance(config.get("model"), Mapping):
        raise ValueError("config['model'] must be ModelFingerprint.from_model(model).to_dict().")
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"tensor {name!r} holds NaN or infinite entries; refusing to save.")
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, directory=True) as tmp:
        tmp.mkdir(parents=True, exist_ok=True)
        flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
        save_file(flat, str(tmp / TENSORS), metadata={"kind": str(kind)})
        full = dict(config)
        full["format_version"] = FORMAT_VERSION
        full["tensors_sha256"] = sha256_file(tmp / TENSORS)
        (tmp / CONFIG).write_text(json.dumps(full, indent=2, sort_keys=True), encoding="utf-8")
    return target


def read_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a lens folder's JSON config (no tensors are read).

    Raises:
        LensArtifactError: Missing folder or file, a pickle file instead, bad JSON, an
            unknown kind or format version.
    """
    folder = Path(directory)
    if folder.is_file():
        if folder.suffix.lower() in _PICKLE_SUFFIXES:
            raise LensArtifactError(
                f"{folder} is a pickle file; hublens never unpickles lens files. Convert it "
                "once in a session you trust: `hublens fit-lens --convert "
                f"{folder} --model MODEL --out DIR` (reads it with torch's weights_only "
                "loader and writes safetensors + JSON)."
            )
        raise LensArtifactError(f"{folder} is a file; pass the lens folder that holds {CONFIG}.")
    if not folder.is_dir():
        raise LensArtifactError(f"Lens folder {folder} does not exist.")
    path = folder / CONFIG
    if not path.is_file():
        stray = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in _PICKLE_SUFFIXES)
        hint = (
            f" It holds {', '.join(stray)}: convert with `hublens fit-lens --convert`."
            if stray
            else ""
        )
        raise LensArtifactError(f"{folder} has no {CONFIG}; it is not a hublens lens folder.{hint}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LensArtifactError(f"{path} is not valid JSON ({exc}); refit or restore it.") from None
    if not isinstance(config, dict):
        raise LensArtifactError(f"{path} must hold a JSON object.")
    if config.get("kind") not in KINDS:
        raise LensArtifactError(
            f"{path} has kind={config.get('kind')!r}; known kinds: {', '.join(KINDS)}."
        )
    if config.get("format_version") != FORMAT_VERSION:
        raise LensArtifactError(
            f"{path} has format_version={config.get('format_version')!r}; this hublens reads "
            f"version {FORMAT_VERSION}. Refit with this version (hublens fit-lens)."
        )
    if not isinstance(config.get("model"), dict):
        raise LensArtifactError(f"{path} records no model fingerprint; refit it.")
    return config


def load_artifact(
    directory: str | os.PathLike[str], *, model: Any | None = None
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read a lens folder: its tensors (fp32, CPU) and config, all checks first.

    Args:
        directory: The lens folder.
        model: When given, the lens's recorded fingerprint must match this HubModel.

    Returns:
        ``(tensors, config)``.

    Raises:
        LensArtifactError: See :func:`read_config`; also a missing or corrupt tensor file
            (sha256 differs from the one recorded), or a fingerprint mismatch.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(directory)
    config = read_config(folder)
    if model is not None:
        ModelFingerprint.from_model(model).check(config["model"], what=f"The lens in {folder}")
    path = folder / TENSORS
    if not path.is_file():
        raise LensArtifactError(f"{folder} has no {TENSORS}; refit or restore the lens.")
    digest = sha256_file(path)
    if digest != config.get("tensors_sha256"):
        raise LensArtifactError(
            f"{path} is corrupt: its sha256 {digest[:12]}… differs from the recorded "
            f"{str(config.get('tensors_sha256'))[:12]}…. Refit or restore the lens."
        )
    try:
        raw = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise LensArtifactError(f"{path} could not be read as safetensors: {exc}") from None
    tensors = {k: v.float() for k, v in raw.items()}
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise LensArtifactError(f"{path}: tensor {name!r} holds NaN or infinite entries.")
    return tensors, config
