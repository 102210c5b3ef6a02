"""Atomic writes: a file or folder appears complete under its final name, or not at all.

The one helper every writer uses (reports, results, caches): the content is written to a
temporary sibling (same folder, so the final ``os.replace`` is a rename on one file system),
flushed, and renamed over the target. On any exception the temporary is removed.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Temporary siblings are named ``.{target}.tmp-{pid}-{random}``; :func:`stale_temporaries`
#: finds them again.
TMP_MARK = ".tmp-"


def temporary_sibling(target: Path) -> Path:
    """A fresh temporary path beside ``target`` (not created)."""
    return target.parent / f".{target.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"


@contextmanager
def atomic_path(target: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target`` atomically.

    Args:
        target: The final file or folder.
        directory: The temporary is a folder (created empty) instead of a file path.

    Yields:
        The temporary path. Write the whole content there inside the ``with`` block.

    Example:
        >>> import tempfile, pathlib
        >>> out = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_path(out) as tmp:
        ...     _ = tmp.write_text("done")
        >>> out.read_text()
        'done'
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(final)
    if directory:
        tmp.mkdir()
    try:
        yield tmp
        if directory:
            for path in (p for p in tmp.rglob("*") if p.is_file()):
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
            if final.exists():
                shutil.rmtree(final)
        else:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # a written file is meant to be shared, like open() would make
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically and return the path."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)
