"""`load_model`: bundled names, Hugging Face names and folders, GGUF files, or live objects."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hublens._version import __version__
from hublens.bundled import BUNDLED, DEFAULT_MODEL
from hublens.cache import (
    PICKLE_SUFFIXES,
    cache_root,
    check_writable,
    read_manifest,
    remove_stale_temporaries,
    write_entry,
)
from hublens.errors import UnknownModelError, WeightsNotFoundError
from hublens.install_guard import hub_offline, no_package_installs
from hublens.model import HubModel, Provenance

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
    placement = _placement(device, device_map, n_devices)
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
        return _from_objects(
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
        return _load_bundled(name, rebuild_cache=rebuild_cache, **options)
    path = Path(name).expanduser()
    if path.exists():
        if path.is_dir():
            return _load_folder(path, **options)
        if path.suffix == ".gguf":
            return _load_gguf(path, rebuild_cache=rebuild_cache, **options)
        raise UnknownModelError(
            f"model={name!r} is a file but not a .gguf file. Pass a .gguf file, a Hugging Face "
            "folder, or a model name."
        )
    if path.suffix == ".gguf" or name.startswith((".", "/", "~")):
        raise WeightsNotFoundError(f"model={name!r}: no such file or folder. {_SUPPLY_WEIGHTS}")
    return _load_hub_name(name, allow_download=allow_download, **options)


def _load_bundled(name: str, *, rebuild_cache: bool, **options: Any) -> HubModel:
    spec = BUNDLED[name]
    package_version = spec.package_version()
    entry = cache_root() / f"{name}-{package_version}-fp32"

    def locate(scratch: Path) -> Path:
        return spec.locate_gguf(scratch)

    location = f"{spec.distribution}=={package_version}"
    hf, tok, sha = _cached_gguf(
        entry,
        locate,
        rebuild_cache,
        meta={"bundled": name, "package": location},
        add_bos_token=spec.prepend_bos,
        placement=options["placement"],
    )
    options["prepend_bos"] = (
        spec.prepend_bos if options["prepend_bos"] is None else options["prepend_bos"]
    )
    options["dominant_language"] = options["dominant_language"] or spec.dominant_language
    options["tl_name"] = options["tl_name"] or spec.tl_name
    return _from_objects(
        hf, tok, name=name, source="bundled", location=location, weights_sha256=sha, **options
    )


def _load_gguf(path: Path, *, rebuild_cache: bool, **options: Any) -> HubModel:
    path = path.resolve()
    stat = path.stat()
    key = hashlib.sha256(f"{path}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    entry = cache_root() / f"gguf-{path.stem}-{key}-fp32"
    hf, tok, sha = _cached_gguf(
        entry,
        lambda scratch: path,
        rebuild_cache,
        meta={"gguf": str(path), "size": stat.st_size},
        placement=options["placement"],
    )
    return _from_objects(
        hf, tok, name=str(path), source="gguf", location=str(path), weights_sha256=sha, **options
    )


def _cached_gguf(
    entry: Path,
    locate: Any,
    rebuild: bool,
    meta: dict[str, Any],
    add_bos_token: bool | None = None,
    placement: dict[str, Any] | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, str]:
    """Load a dequantised fp32 copy of a GGUF model from the cache, building it if absent.

    Temporary folders of killed builds are removed first; a missing entry is built only after
    the cache folder proved writable. The entry's cheap checks (manifest, sizes, no pickle
    file) pass before anything is read, and only safetensors are read.
    """
    remove_stale_temporaries(entry.parent)
    if rebuild or not entry.exists():
        check_writable(entry.parent)  # before the minute of dequantisation, not after
        _build_gguf_entry(entry, locate, meta)
    read_manifest(entry, quick=True)
    # Hash (when the stamps changed) on a second thread while the main one imports and reads
    # (hashlib releases the GIL). Nothing loaded is returned before the verification passed.
    with ThreadPoolExecutor(max_workers=1) as pool:
        verified = pool.submit(read_manifest, entry)
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            hf = AutoModelForCausalLM.from_pretrained(
                entry,
                dtype=torch.float32,
                attn_implementation="eager",
                local_files_only=True,
                use_safetensors=True,
                **_from_pretrained_placement(placement),
            )
            # For BOS models, say add_bos_token=True up front: TransformerLens otherwise re-reads
            # the whole tokenizer to get a BOS-adding copy (seconds for Gemma's 262k
            # vocabulary). hublens itself encodes with add_special_tokens=False and adds BOS
            # per the model's recorded policy.
            extra = {} if add_bos_token is None else {"add_bos_token": add_bos_token}
            tok = _cached_tokenizer(entry, extra) or AutoTokenizer.from_pretrained(
                entry, local_files_only=True, **extra
            )
        except Exception:
            verified.result()  # a corrupt entry explains the failure better: raise CacheError
            raise
        manifest = verified.result()
    return hf, tok, manifest["files"]["model.safetensors"]["sha256"]


def _cached_tokenizer(entry: Path, extra: dict[str, Any]) -> PreTrainedTokenizerBase | None:
    """The entry's tokenizer built straight from its tokenizer.json, or None to use AutoTokenizer.

    ``AutoTokenizer.from_pretrained`` parses a tokenizers-backed tokenizer.json twice in Python
    and rebuilds the vocabulary from Python dicts (about 3 s for Gemma's 33 MB file); the same
    class constructed with ``tokenizer_file`` reads it once in Rust. The result is the same
    tokenizer: same class, backend serialisation, special tokens, added tokens, chat template
    and ids (tests/unit/test_hardening_tokenizer_load.py, and the bundled models in
    tests/integration). Anything unusual (no tokenizer.json, another backend, custom code)
    returns None.
    """
    from transformers.models.auto.tokenization_auto import tokenizer_class_from_name
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    config_path, file = entry / "tokenizer_config.json", entry / "tokenizer.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cls = tokenizer_class_from_name(str(config.get("tokenizer_class")))
    usable = (
        file.is_file()
        and config.get("backend") == "tokenizers"
        and "auto_map" not in config
        and isinstance(cls, type)
        and issubclass(cls, TokenizersBackend)
    )
    if not usable or cls is None:
        return None
    kwargs = {k: v for k, v in config.items() if k not in ("tokenizer_class", "backend")}
    template = entry / "chat_template.jinja"
    if template.is_file() and "chat_template" not in kwargs:
        kwargs["chat_template"] = template.read_text(encoding="utf-8")
    kwargs.update(extra)
    tok = cls(tokenizer_file=str(file), name_or_path=str(entry), **kwargs)
    tok.init_kwargs.setdefault("added_tokens_decoder", dict(tok.added_tokens_decoder))
    return tok


def _build_gguf_entry(entry: Path, locate: Any, meta: dict[str, Any]) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    logger.warning(
        "hublens: first load of %s: dequantising GGUF weights into %s (about a minute; later "
        "loads read the cache).",
        meta,
        entry,
    )
    with tempfile.TemporaryDirectory(prefix="hublens-gguf-") as scratch:
        gguf = locate(Path(scratch))
        hf = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # save_pretrained refuses a GGUF-loaded model until the quantizer traces are gone.
        setattr(hf, "hf_quantizer", None)  # noqa: B010 - not a declared attribute
        if hasattr(hf.config, "quantization_config"):
            del hf.config.quantization_config
        if not getattr(hf.config, "architectures", None):
            hf.config.architectures = [type(hf).__name__]

        def writer(folder: Path) -> None:
            hf.save_pretrained(folder, safe_serialization=True)
            tok.save_pretrained(folder)

        write_entry(entry, writer, meta={**meta, "hublens": __version__})
    logger.warning("hublens: cache entry %s built in %.0f s", entry, time.perf_counter() - started)


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
            **_from_pretrained_placement(options["placement"]),
        )
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    except OSError as exc:
        raise WeightsNotFoundError(
            f"model={str(path)!r}: could not load a model from this folder ({exc}). hublens "
            f"loads safetensors weights only, never pickles. {_SUPPLY_WEIGHTS}"
        ) from exc
    return _from_objects(hf, tok, name=str(path), source="folder", location=str(path), **options)


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
    return _wrap(
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


def _from_objects(
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
    return _wrap(
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


def _wrap(
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


def _placement(
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


def _from_pretrained_placement(placement: dict[str, Any] | None) -> dict[str, Any]:
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
