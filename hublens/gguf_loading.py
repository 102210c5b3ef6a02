"""GGUF weights (bundled or a user's file) through a verified fp32 safetensors cache."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hublens._version import __version__
from hublens.boot import from_objects, from_pretrained_placement
from hublens.bundled import BUNDLED
from hublens.cache import (
    cache_root,
    check_writable,
    read_manifest,
    remove_stale_temporaries,
    write_entry,
)
from hublens.model import HubModel

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)


def load_bundled(name: str, *, rebuild_cache: bool, **options: Any) -> HubModel:
    """Load a bundled model (``hublens.BUNDLED``) through its verified cache entry."""
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
    return from_objects(
        hf, tok, name=name, source="bundled", location=location, weights_sha256=sha, **options
    )


def load_gguf(path: Path, *, rebuild_cache: bool, **options: Any) -> HubModel:
    """Load a user's .gguf file through a cache entry keyed by its path, size and mtime."""
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
    return from_objects(
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
    # Hash (when the stamps changed) and parse the tokenizer (seconds for Gemma's 262k
    # vocabulary) on two more threads while the main one reads the weights: hashlib and the Rust
    # tokenizer parse release the GIL. Nothing loaded is returned before the verification passed.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # For BOS models, say add_bos_token=True up front: TransformerLens otherwise re-reads the whole
    # tokenizer to get a BOS-adding copy. hublens itself encodes with add_special_tokens=False
    # and adds BOS per the model's recorded policy.
    extra = {} if add_bos_token is None else {"add_bos_token": add_bos_token}

    def tokenizer() -> PreTrainedTokenizerBase:
        return _cached_tokenizer(entry, extra) or AutoTokenizer.from_pretrained(
            entry, local_files_only=True, **extra
        )

    with ThreadPoolExecutor(max_workers=2) as pool:
        verified = pool.submit(read_manifest, entry)
        parsed = pool.submit(tokenizer)
        try:
            hf = AutoModelForCausalLM.from_pretrained(
                entry,
                dtype=torch.float32,
                attn_implementation="eager",
                local_files_only=True,
                use_safetensors=True,
                **from_pretrained_placement(placement),
            )
            tok = parsed.result()
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
