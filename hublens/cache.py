"""A verified, atomically written on-disk cache of dequantised model weights.

Layout: ``<cache_root()>/<key>/`` holds the files a writer produced (``model.safetensors``,
``config.json``, tokenizer files) plus ``hublens-manifest.json`` with the size and sha256 of
every file. An entry is built in a temporary sibling folder, verified, and only then renamed
into place, so a process killed half-way never leaves an entry that loads. Reading an entry
re-checks sizes and hashes; a mismatch raises :class:`~hublens.errors.CacheError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hublens.atomic import atomic_path
from hublens.errors import CacheError

#: Environment variable that overrides where the cache lives.
CACHE_ENV = "HUBLENS_CACHE_DIR"
MANIFEST = "hublens-manifest.json"
_FORMAT = 1
_BLOCK = 1 << 24


def cache_root() -> Path:
    """Folder of the weight cache: ``$HUBLENS_CACHE_DIR``, else ``$XDG_CACHE_HOME/hublens``.

    Returns:
        The folder (not created).
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hublens"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _fix_hint(entry: Path) -> str:
    return (
        f"Delete the folder {entry} (or call load_model(..., rebuild_cache=True)) and hublens "
        "will rebuild it from the original weights."
    )


def read_manifest(entry: Path) -> dict[str, Any]:
    """Verify a cache entry and return its manifest.

    Args:
        entry: The entry folder.

    Returns:
        The manifest: ``{"format", "files": {name: {"size", "sha256"}}, "meta": {...}}``.

    Raises:
        CacheError: The manifest is missing or unreadable, a file is missing, truncated
            (wrong size) or corrupt (wrong sha256).
    """
    manifest_path = entry / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheError(
            f"Weight cache entry {entry} has no readable {MANIFEST} ({exc}). {_fix_hint(entry)}"
        ) from exc
    for name, expected in files.items():
        path = entry / name
        if not path.is_file():
            raise CacheError(f"Weight cache file {path} is missing. {_fix_hint(entry)}")
        size = path.stat().st_size
        if size != expected["size"]:
            raise CacheError(
                f"Weight cache file {path} is truncated or overwritten: {size} bytes, expected "
                f"{expected['size']}. {_fix_hint(entry)}"
            )
        if sha256_file(path) != expected["sha256"]:
            raise CacheError(
                f"Weight cache file {path} is corrupt: its sha256 does not match the manifest. "
                f"{_fix_hint(entry)}"
            )
    return manifest


def write_entry(
    entry: Path, writer: Callable[[Path], None], meta: dict[str, Any]
) -> dict[str, Any]:
    """Build a cache entry atomically: write into a temporary folder, verify, rename.

    Args:
        entry: Final folder of the entry. An existing entry there is replaced.
        writer: Called with the temporary folder; writes every file of the entry into it.
        meta: JSON-serialisable facts about the entry (source, versions), kept in the manifest.

    Returns:
        The manifest of the new entry.

    Raises:
        CacheError: The written files do not verify.
    """
    with atomic_path(entry, directory=True) as tmp:
        writer(tmp)
        files = {}
        for path in sorted(p for p in tmp.rglob("*") if p.is_file()):
            name = path.relative_to(tmp).as_posix()
            files[name] = {"size": path.stat().st_size, "sha256": sha256_file(path)}
        manifest = {"format": _FORMAT, "files": files, "meta": meta}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        read_manifest(tmp)
    return manifest
