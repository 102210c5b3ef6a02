"""Access to the data files shipped inside the package (works from an installed wheel)."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

from ..parallel import ParallelData, ParallelDataError

_PACKAGE = "hublens.data.builtin"
_FOLDER = "files"


def read_text(filename: str) -> str:
    """Returns the UTF-8 text of a packaged data file.

    Raises:
        ParallelDataError: If the file is not part of the installed package.
    """
    try:
        resource = resources.files(_PACKAGE).joinpath(_FOLDER).joinpath(filename)
        return resource.read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise ParallelDataError(
            f"packaged data file {filename!r} is missing from {_PACKAGE}/{_FOLDER}; reinstall "
            "hublens (the wheel must include hublens/data/builtin/files/*.jsonl)."
        ) from exc


def load_packaged_jsonl(filename: str, *, name: str) -> ParallelData:
    """Loads a packaged JSON-lines file as :class:`ParallelData`."""
    records: list[dict[str, Any]] = []
    located_errors = []
    for lineno, line in enumerate(read_text(filename).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:  # pragma: no cover - packaged files are tested
            located_errors.append(f"{filename}, line {lineno}: {exc.msg}")
    if located_errors:  # pragma: no cover
        raise ParallelDataError("malformed packaged data: " + "; ".join(located_errors))
    return mark_builtin(ParallelData.from_records(records, name=name), name)


def mark_builtin(data: ParallelData, key: str) -> ParallelData:
    """``data`` marked as the built-in data set ``key`` (:attr:`ParallelData.builtin`).

    Only the built-in loaders call this; a user's file with a built-in's name stays unmarked.
    """
    marked = copy.copy(data)  # shallow: the validated tuples are shared, nothing re-checked
    object.__setattr__(marked, "builtin", key)  # frozen dataclass: set once, here
    return marked
