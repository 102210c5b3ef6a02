"""Booting a transformers model and tokenizer into a HubModel: the bridge, BOS policy, placement."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hublens._version import __version__
from hublens.install_guard import no_package_installs
from hublens.model import HubModel, Provenance

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def from_objects(
    hf: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    *,
    name: str,
    source: str,
    location: str,
    weights_sha256: str | None = None,
    **options: Any,
) -> HubModel:
    """Boot a TransformerBridge around an already built Hugging Face model."""
    from transformer_lens.model_bridge import TransformerBridge

    config = hf.config
    if not getattr(config, "architectures", None):
        config.architectures = [type(hf).__name__]
    tl_name = options["tl_name"] or getattr(config, "_name_or_path", "") or type(hf).__name__
    if getattr(hf, "hf_device_map", None):  # placed by device_map: cast, never move
        hf = hf.to(dtype=options["dtype"])  # type: ignore[call-arg]
    else:
        hf = hf.to(device=options["device"], dtype=options["dtype"])  # type: ignore[call-arg]
    hf.eval()
    # TransformerLens reads init_kwargs["name_or_path"], absent from in-memory tokenizers.
    tokenizer.init_kwargs.setdefault("name_or_path", tokenizer.name_or_path or "")
    with no_package_installs():
        bridge = TransformerBridge.boot_transformers(
            str(tl_name),
            hf_model=hf,
            tokenizer=_bridge_tokenizer(tokenizer),
            device=options["device"],
            dtype=options["dtype"],
        )
    options["tl_name"] = str(tl_name)
    return wrap_model(
        bridge,
        tokenizer,
        name=name,
        source=source,
        location=location,
        weights_sha256=weights_sha256,
        **options,
    )


def _package_version(distribution: str, module: Any) -> str:
    """A package's version: its ``__version__``, else the installed distribution's metadata."""
    from importlib.metadata import PackageNotFoundError, version

    found = getattr(module, "__version__", None)
    if found:
        return str(found)
    try:
        return version(distribution)
    except PackageNotFoundError:
        return "unknown"


def _bridge_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """The tokenizer to hand TransformerLens, which must not try to re-download it.

    When a tokenizer has a BOS token but does not add it, TransformerLens 4.3 reloads it from
    ``name_or_path`` with ``add_bos_token=True``; for a tokenizer built in memory (or whose
    folder is gone) that is a hub download, which fails offline. Such a tokenizer is handed
    over as a shallow copy marked ``add_bos_token`` (read only by that check); hublens itself
    tokenizes with the original and its own BOS policy.
    """
    import copy

    if tokenizer.bos_token is None:
        return tokenizer
    kwargs = tokenizer.init_kwargs
    adds = kwargs.get("add_bos_token", getattr(tokenizer, "add_bos_token", False))
    source = kwargs.get("name_or_path") or ""
    if adds or (source and Path(source).is_dir()):
        return tokenizer
    marked = copy.copy(tokenizer)
    marked.init_kwargs = {**kwargs, "add_bos_token": True}
    return marked


def _tokenizer_adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == bos


def wrap_model(
    bridge: Any,
    tokenizer: PreTrainedTokenizerBase,
    *,
    name: str,
    source: str,
    location: str,
    weights_sha256: str | None,
    device: str | torch.device,
    dtype: torch.dtype,
    prepend_bos: bool | None,
    dominant_language: str | None,
    tl_name: str | None,
    placement: dict[str, Any] | None = None,
) -> HubModel:
    """Wrap a booted bridge and its tokenizer as a HubModel, with provenance and BOS policy."""
    import transformer_lens
    import transformers

    bridge.eval()
    if prepend_bos is None:
        prepend_bos = _tokenizer_adds_bos(tokenizer)
    if prepend_bos and tokenizer.bos_token_id is None:
        raise ValueError(
            f"prepend_bos=True but the tokenizer of {name!r} has no BOS token; pass "
            "prepend_bos=False."
        )
    provenance = Provenance(
        name=name,
        source=source,
        tl_name=tl_name or name,
        location=location,
        weights_sha256=weights_sha256,
        dtype=str(dtype).removeprefix("torch."),
        device=str(device) if not placement else _describe_placement(bridge, placement),
        versions={
            "hublens": __version__,
            "transformer_lens": _package_version("transformer-lens", transformer_lens),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        },
    )
    return HubModel(
        bridge,
        tokenizer,
        prepend_bos=prepend_bos,
        dominant_language=dominant_language or "en",
        provenance=provenance,
    )


def resolve_placement(
    device: str | torch.device,
    device_map: str | dict[str, str | int] | None,
    n_devices: int | None,
) -> dict[str, Any] | None:
    """Validate multi-device options before anything loads; None for one device."""
    if device_map is None and n_devices is None:
        return None
    if device_map is not None and n_devices is not None:
        raise ValueError(
            f"device_map={device_map!r} and n_devices={n_devices!r}: pass one of them."
        )
    if str(device) != "cpu":
        raise ValueError(
            f"device={str(device)!r} with device_map/n_devices: they replace device; leave "
            "device at its default."
        )
    if n_devices is not None:
        if isinstance(n_devices, bool) or not isinstance(n_devices, int) or n_devices < 1:
            raise ValueError(f"n_devices={n_devices!r}: pass a positive integer.")
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n_devices > 1 and available < n_devices:
            raise ValueError(
                f"n_devices={n_devices} needs {n_devices} CUDA devices; this machine has "
                f"{available}. Use device_map (e.g. {{'': 'cpu'}}) for CPU placement."
            )
        return {"n_devices": n_devices} if n_devices > 1 else None
    if not isinstance(device_map, (str, dict)):
        raise TypeError(f"device_map={device_map!r}: pass a string such as 'auto' or a dict.")
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        raise ValueError(
            f"device_map={device_map!r} needs the accelerate package: pip install accelerate."
        )
    return {"device_map": device_map}


def from_pretrained_placement(placement: dict[str, Any] | None) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments for a placement (TransformerLens's translation)."""
    if not placement:
        return {}
    from transformer_lens.utilities.multi_gpu import resolve_device_map

    device_map, max_memory = resolve_device_map(
        placement.get("n_devices"), placement.get("device_map"), None, None
    )
    out: dict[str, Any] = {"device_map": device_map}
    if max_memory is not None:
        out["max_memory"] = max_memory
    return out


def _describe_placement(bridge: Any, placement: dict[str, Any]) -> str:
    hf_map = getattr(getattr(bridge, "original_model", None), "hf_device_map", None) or {}
    devices = sorted({str(v) for v in hf_map.values()})
    return f"{placement} -> {', '.join(devices) or bridge.cfg.device}"
