"""`load_model`: bundled names, Hugging Face names and folders, GGUF files, or live objects."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hublens.boot import from_objects, from_pretrained_placement, resolve_placement, wrap_model
from hublens.bundled import BUNDLED, DEFAULT_MODEL
from hublens.cache import (
    PICKLE_SUFFIXES,
)
from hublens.errors import UnknownModelError, WeightsNotFoundError
from hublens.gguf_loading import load_bundled, load_gguf
from hublens.install_guard import hub_offline, no_package_installs
from hublens.model import HubModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

_SUPPLY_WEIGHTS = (
    "No model hub is needed if you supply the weights yourself: pass a local Hugging Face "
    "folder (config.json + *.safetensors + tokenizer files) as load_model('/path/to/folder'), "
    "a local .gguf file as load_model('/path/to/model.gguf'), an already built model as "
    "load_model(hf_model, tokenizer), or a bundled name: " + ", ".join(sorted(BUNDLED)) + "."
)


def load_model(
    model: str | os.PathLike[str] | PreTrainedModel = DEFAULT_MODEL,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    prepend_bos: bool | None = None,
    dominant_language: str | None = None,
    tl_name: str | None = None,
    rebuild_cache: bool = False,
    device_map: str | dict[str, str | int] | None = None,
    n_devices: int | None = None,
    allow_download: bool = False,
) -> HubModel:
    """Load a model as a TransformerLens 4 ``TransformerBridge`` wrapped in a :class:`HubModel`.

    Args:
        model: A bundled name (``"gemma-3-270m"``, the default, or ``"smollm2-135m"``), a
            TransformerLens-supported Hugging Face name, a local Hugging Face folder, a local
            ``.gguf`` file, or an already built transformers model (then pass ``tokenizer``).
        tokenizer: The tokenizer, when ``model`` is a built model; otherwise leave None.
        device: Where to put the model.
        dtype: Parameter dtype. Cached weights are fp32 and cast on load.
        prepend_bos: Whether prompts start with BOS. None: the bundled model's policy, else
            whether the tokenizer adds BOS by itself.
        dominant_language: The model's dominant language (default ``"en"``).
        tl_name: Official Hugging Face name of the architecture, for folders, GGUF files and
            built models whose config does not name it (rarely needed).
        rebuild_cache: Rebuild the dequantised cache entry of a bundled or GGUF model.
        device_map: For models larger than one device: a Hugging Face device map
            (``"auto"``, ``"balanced"``, or ``{module: device}``), passed through to
            TransformerLens / ``from_pretrained`` (needs ``accelerate``). Replaces ``device``.
        n_devices: Split the model over this many CUDA devices (TransformerLens's
            ``n_devices``, translated to a balanced device map). Replaces ``device``.
        allow_download: For a Hugging Face name: download its safetensors, config and
            tokenizer files from the hub if they are not in the local Hugging Face cache.
            Default False: hublens reads only the local cache and never reaches the network.

    Returns:
        The wrapped model, in eval mode.

    Raises:
        UnknownModelError: ``model`` is not bundled, not a path and not a TransformerLens model.
        WeightsNotFoundError: The model is known but its weights are not on this machine.
        CacheError: The cached weights are corrupt or truncated.
        TypeError: A built model came without a tokenizer, or a tokenizer without a built model.

    Example:
        >>> import hublens
        >>> model = hublens.load_model("gemma-3-270m")  # doctest: +SKIP
    """
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype={dtype!r}: pass a torch dtype such as torch.float32.")
    placement = resolve_placement(device, device_map, n_devices)
    options: dict[str, Any] = dict(
        device=device,
        dtype=dtype,
        prepend_bos=prepend_bos,
        dominant_language=dominant_language,
        tl_name=tl_name,
    )
    if not isinstance(model, (str, os.PathLike)):
        if tokenizer is None:
            raise TypeError(
                f"model={type(model).__name__}: a built model needs its tokenizer too: "
                "load_model(hf_model, tokenizer)."
            )
        if placement:
            raise TypeError(
                "device_map / n_devices apply when hublens loads the weights; for a built model "
                "place it yourself (AutoModelForCausalLM.from_pretrained(..., device_map=...)) "
                "and pass it as load_model(hf_model, tokenizer)."
            )
        return from_objects(
            model, tokenizer, name="object", source="object", location="", **options
        )
    if tokenizer is not None:
        raise TypeError(
            f"tokenizer=... is only for built models; model={model!r} is a name or path, whose "
            "tokenizer hublens loads itself."
        )
    name = os.fspath(model)
    options["placement"] = placement
    if name in BUNDLED:
        return load_bundled(name, rebuild_cache=rebuild_cache, **options)
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir():
            return _load_folder(path, **options)
        if path.suffix == ".gguf":
            return load_gguf(path, rebuild_cache=rebuild_cache, **options)
        raise UnknownModelError(
            f"model={name!r} is a file but not a .gguf file. Pass a .gguf file, a Hugging Face "
            "folder, or a model name."
        )
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")):
        raise WeightsNotFoundError(f"model={name!r}: no such file or folder. {_SUPPLY_WEIGHTS}")
    return _load_hub_name(name, allow_download=allow_download, **options)


def _load_folder(path: Path, **options: Any) -> HubModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not (path / "config.json").is_file():
        raise WeightsNotFoundError(
            f"model={str(path)!r} is a folder without config.json; a Hugging Face model folder "
            f"needs config.json, weights (*.safetensors) and tokenizer files. {_SUPPLY_WEIGHTS}"
        )
    _refuse_pickle_only(path, str(path))
    try:
        hf = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=options["dtype"],
            attn_implementation="eager",
            local_files_only=True,
            use_safetensors=True,
            **from_pretrained_placement(options["placement"]),
        )
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except OSError as exc:
        raise WeightsNotFoundError(
            f"model={str(path)!r}: could not load a model from this folder ({exc}). hublens "
            f"loads safetensors weights only, never pickles. {_SUPPLY_WEIGHTS}"
        ) from exc
    return from_objects(hf, tok, name=str(path), source="folder", location=str(path), **options)


def _load_hub_name(name: str, *, allow_download: bool = False, **options: Any) -> HubModel:
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.model_bridge.sources.transformers.helpers import check_model_support
    from transformer_lens.tools.model_registry.registry_io import resolve_model_alias

    support = check_model_support(resolve_model_alias(name) or name)
    if not support.get("is_supported"):
        hint = support.get("suggestion")
        raise UnknownModelError(
            f"model={name!r} is not a bundled hublens model, not an existing path, and not a "
            f"model TransformerLens supports"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + f". Bundled models: {', '.join(sorted(BUNDLED))}. {_SUPPLY_WEIGHTS}"
        )
    _refuse_pickle_only(_hub_snapshot(name, allow_download), name)
    placement = options["placement"]
    try:  # the snapshot is local now: booting never reaches the network
        with no_package_installs(), hub_offline():
            bridge = TransformerBridge.boot_transformers(
                name,
                device=None if placement else options["device"],
                dtype=options["dtype"],
                **(placement or {}),
            )
    except (OSError, ValueError) as exc:
        raise WeightsNotFoundError(
            f"model={name!r} is supported by TransformerLens but its weights are not on this "
            f"machine and no model hub answered ({type(exc).__name__}: {exc}). {_SUPPLY_WEIGHTS}"
        ) from exc
    return wrap_model(
        bridge,
        bridge.tokenizer,
        name=name,
        source="huggingface",
        location=name,
        weights_sha256=None,
        **options,
    )


_HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


def _hub_snapshot(name: str, allow_download: bool) -> Path:
    """The local Hugging Face snapshot folder of ``name`` (downloaded only if allowed).

    A download fetches safetensors, configs and tokenizer files only, never pickles.
    """
    from huggingface_hub import snapshot_download

    try:
        if allow_download:
            return Path(snapshot_download(name, allow_patterns=_HUB_FILES))
        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, OfflineModeIsEnabled, HTTP errors
        how = (
            "the download failed"
            if allow_download
            else "hublens reads only the local Hugging Face cache unless you pass "
            "load_model(..., allow_download=True)"
        )
        raise WeightsNotFoundError(
            f"model={name!r} is supported by TransformerLens but its weights are not on this "
            f"machine ({how}; {type(exc).__name__}: {exc}). {_SUPPLY_WEIGHTS}"
        ) from exc


def _refuse_pickle_only(folder: Path, name: str) -> None:
    """Refuse a model folder whose weights are pickle checkpoints only."""
    files = [p for p in folder.rglob("*") if p.is_file()]
    if any(p.name.endswith(".safetensors") for p in files):
        return
    pickles = sorted(p.name for p in files if p.suffix.lower() in PICKLE_SUFFIXES)
    found = f"only pickle checkpoint(s) {pickles}" if pickles else "no *.safetensors weights"
    raise WeightsNotFoundError(
        f"model={name!r}: {folder} holds {found}. hublens loads safetensors only and never "
        "unpickles a file (unpickling can run code). Convert the checkpoint in an environment "
        "you trust (model.save_pretrained(folder, safe_serialization=True)) and load that "
        f"folder, or use a model published with safetensors. {_SUPPLY_WEIGHTS}"
    )
