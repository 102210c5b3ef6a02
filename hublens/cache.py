"""A verified, atomically written on-disk cache of dequantised model weights.

Layout: ``<cache_root()>/<key>/`` holds the files a writer produced (``model.safetensors``,
``config.json``, tokenizer files) plus ``hublens-manifest.json`` with the size and sha256 of
every file. An entry is built in a temporary sibling folder, verified, and only then renamed
into place, so a process killed half-way never leaves an entry that loads; its temporary
folder is removed by the next load (:func:`remove_stale_temporaries`).

What is checked when (:func:`read_manifest`): on every load, that the manifest is readable,
that every listed file is present with its recorded size, and that the entry holds no pickle
file (``.bin``, ``.pt``, ...); the full sha256 of every file is recomputed when the entry was
never verified on this machine or when any file's stamp (size, mtime, ctime, inode, device)
differs from the one recorded at its last full verification (``hublens-verified.json``). Any
write, copy, rename or swap of a file changes its ctime or inode, so it is re-hashed; only a
corruption that bypasses the file system (bad sectors) goes unnoticed until ``full=True`` or
``load_model(..., rebuild_cache=True)``. A mismatch raises :class:`~hublens.errors.CacheError`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hublens.atomic import TMP_MARK, atomic_path, write_text_atomic
from hublens.errors import CacheError

#: Environment variable that overrides where the cache lives.
CACHE_ENV = "HUBLENS_CACHE_DIR"
MANIFEST = "hublens-manifest.json"
#: Per-file stamps recorded when the entry last passed a full sha256 verification.
VERIFIED = "hublens-verified.json"
#: Suffixes of pickle checkpoints, which hublens never loads.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
#: A temporary sibling older than this is stale even if its process id is alive (reused).
STALE_AFTER_S = 3600
_TEMPORARY = re.compile(r"^\.(?P<target>.+)" + re.escape(TMP_MARK) + r"(?P<pid>\d+)-[0-9a-f]+$")
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


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _read_stamps(entry: Path, manifest_text: str) -> dict[str, Any]:
    try:
        recorded = json.loads((entry / VERIFIED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    same_manifest = recorded.get("manifest_sha256") == _text_sha(manifest_text)
    return recorded.get("files", {}) if same_manifest else {}


def _text_sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_manifest(entry: Path, *, full: bool = False, quick: bool = False) -> dict[str, Any]:
    """Verify a cache entry and return its manifest.

    Every call checks the manifest, that each listed file exists with its recorded size, and
    that no pickle checkpoint lies in the entry. The sha256 of a file is recomputed only when
    its stamp changed since its last full verification (see the module docstring), or always
    with ``full=True``; after a full verification passes, the stamps are recorded (skipped
    when the entry is read-only, which then re-hashes on every load).

    Args:
        entry: The entry folder.
        full: Recompute every sha256 regardless of stamps.
        quick: Only the checks every call makes (no sha256 at all), e.g. before loading while
            the full check runs on another thread.

    Returns:
        The manifest: ``{"format", "files": {name: {"size", "sha256"}}, "meta": {...}}``.

    Raises:
        CacheError: The manifest is missing or unreadable, a file is missing, truncated
            (wrong size) or corrupt (wrong sha256), or the entry holds a pickle file.
    """
    manifest_path = entry / MANIFEST
    try:
        manifest_text = manifest_path.read_text(encoding="utf-8")
        manifest = json.loads(manifest_text)
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CacheError(
            f"Weight cache entry {entry} has no readable {MANIFEST} ({exc}). {_fix_hint(entry)}"
        ) from exc
    pickles = sorted(p.name for p in entry.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickles:
        raise CacheError(
            f"Weight cache entry {entry} holds pickle file(s) {pickles}, which hublens never "
            f"loads (unpickling can run code); the entry was tampered with. {_fix_hint(entry)}"
        )
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
    if quick:
        return manifest
    stamps = {} if full else _read_stamps(entry, manifest_text)
    current = {}
    for name, expected in files.items():
        path = entry / name
        current[name] = _stamp(path)
        if stamps.get(name) == [*current[name], expected["sha256"]]:
            continue
        if sha256_file(path) != expected["sha256"]:
            raise CacheError(
                f"Weight cache file {path} is corrupt: its sha256 does not match the manifest. "
                f"{_fix_hint(entry)}"
            )
        current[name] = _stamp(path)  # as hashed (a change while hashing is caught next time)
    if any(stamps.get(n) != [*current[n], files[n]["sha256"]] for n in files):
        record = {
            "manifest_sha256": _text_sha(manifest_text),
            "files": {n: [*current[n], files[n]["sha256"]] for n in files},
        }
        try:
            write_text_atomic(entry / VERIFIED, json.dumps(record, indent=1))
        except OSError:
            pass  # a read-only entry: verified anyway, just again next time
    return manifest


def remove_stale_temporaries(root: Path) -> list[Path]:
    """Remove temporary folders that killed writers left in the cache folder ``root``.

    A temporary is named ``.{entry}.tmp-{pid}-{hex}`` (:func:`hublens.atomic.temporary_sibling`).
    It is stale when process ``pid`` is no longer alive, or when it is older than
    :data:`STALE_AFTER_S` (an hour: a build takes minutes, so an older one belongs to a
    reused pid). A live process's fresh temporary is left alone.

    Returns:
        The paths removed.
    """
    removed: list[Path] = []
    try:
        children = list(root.iterdir())
    except OSError:
        return removed
    now = time.time()
    for path in children:
        match = _TEMPORARY.match(path.name)
        if match is None:
            continue
        try:
            age = now - path.lstat().st_mtime
        except OSError:
            continue
        if _alive(int(match["pid"])) and age < STALE_AFTER_S:
            continue
        try:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    except OSError:
        return False
    return True


def check_writable(root: Path) -> None:
    """Make sure a cache entry can be written under ``root``, before any expensive work.

    Raises:
        CacheError: ``root`` cannot be created or written; says how to choose another folder.
    """
    probe = root / f".hublens-write-test{TMP_MARK}{os.getpid()}-0"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CacheError(
            f"The weight cache folder {root} is not writable ({exc.strerror or exc}); the first "
            "load of this model writes a dequantised copy there. Point hublens at a writable "
            f"folder: export {CACHE_ENV}=/path/to/writable/folder (or set "
            f"os.environ[{CACHE_ENV!r}] before loading)."
        ) from exc


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
