"""Aligned ("parallel") items across two or more data types.

A :class:`ParallelData` holds items that mean the same thing in several data types, for
example the same sentence in English and Chinese, ``"3+2"`` and ``"three plus two"``, or
an English sentence and its logical form. Every experiment in hublens reads its inputs
from one. The class is immutable, validates its contents on construction and raises
:class:`ParallelDataError` with a message that names the offending argument, file or line
and says how to fix it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hublens.data.readers import read_delimited, read_jsonl
from hublens.data.validation import (
    ParallelDataError,
    _canonical_json,
    _check_id,
    _check_item,
    _check_meta,
    _check_types,
    validate_located,
)

__all__ = ["ParallelData", "ParallelDataError", "ParallelItem"]

ID_FIELD = "id"
META_FIELD = "meta"
_SUFFIXES = (".jsonl", ".tsv", ".csv")


@dataclass(frozen=True)
class ParallelItem:
    """One aligned item: the same content written in every data type.

    Attributes:
        id: The item's unique identifier within its data set.
        texts: Mapping from data type (e.g. ``"en"``) to the item's text in that type.
        meta: Extra, JSON-serialisable information about the item (may be empty).
    """

    id: str
    texts: Mapping[str, str]
    meta: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def __getitem__(self, data_type: str) -> str:
        """Returns the item's text in ``data_type``."""
        return self.texts[data_type]


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def _loc(where: str | None, default: str) -> str:
    return where if where is not None else default


@dataclass(frozen=True)
class ParallelData:
    """Items aligned across two or more data types.

    Prefer the constructors (:meth:`from_records`, :meth:`from_jsonl`, :meth:`from_tsv`,
    :meth:`from_csv`, :meth:`load`) over calling the class directly; all of them validate.

    Attributes:
        types: Names of the data types (columns), e.g. ``("en", "zh")``; at least two.
        items: One mapping per item from every data type to a non-blank string.
        ids: One unique identifier per item.
        meta: One JSON-serialisable mapping per item (empty mappings when unused).
        name: A human-readable name of the data set (not part of :meth:`content_hash`).
        builtin: Which built-in data set this is (``"arithmetic"``, ...), set only by the
            built-in loaders (``hublens.data.load_builtin``) and kept by :meth:`select`; None
            for every other data set, whatever its name or file name. Defaults are chosen by
            it, never by :attr:`name`. Not part of :meth:`content_hash` or equality.
    """

    types: tuple[str, ...]
    items: tuple[Mapping[str, str], ...]
    ids: tuple[str, ...]
    meta: tuple[Mapping[str, Any], ...] = ()
    name: str = "parallel-data"
    builtin: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        types = tuple(self.types)
        items = tuple(self.items)
        ids = tuple(self.ids)
        meta = tuple(self.meta) if self.meta else tuple({} for _ in items)
        _check_types(types, where="argument 'types'")
        if not items:
            raise ParallelDataError(
                f"data set {self.name!r} is empty: give at least one item "
                "(and at least two for baseline-adjusted statistics)."
            )
        if len(ids) != len(items):
            raise ParallelDataError(
                f"argument 'ids' has {len(ids)} entries but there are {len(items)} items; "
                "give exactly one id per item."
            )
        if len(meta) != len(items):
            raise ParallelDataError(
                f"argument 'meta' has {len(meta)} entries but there are {len(items)} items; "
                "give exactly one meta mapping per item (or none at all)."
            )
        seen: dict[str, int] = {}
        for index, (item, item_id, item_meta) in enumerate(zip(items, ids, meta, strict=True)):
            where = f"item {index} of {self.name!r}"
            _check_id(item_id, where=where)
            if item_id in seen:
                raise ParallelDataError(
                    f"duplicate id {item_id!r} in {where} (first used by item {seen[item_id]}); "
                    "ids must be unique: rename or drop one of the two items."
                )
            seen[item_id] = index
            _check_item(item, types, where=where)
            _check_meta(item_meta, where=where)
        object.__setattr__(self, "types", types)
        object.__setattr__(self, "items", tuple(_frozen(item) for item in items))
        object.__setattr__(self, "ids", ids)
        object.__setattr__(
            self, "meta", tuple(_frozen(json.loads(_canonical_json(dict(m)))) for m in meta)
        )

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]],
        *,
        types: Sequence[str] | None = None,
        id_field: str = ID_FIELD,
        meta_field: str = META_FIELD,
        name: str = "records",
    ) -> ParallelData:
        """Builds parallel data from a sequence of dictionaries.

        Args:
            records: One mapping per item, e.g. ``{"id": "w1", "en": "dog", "zh": "狗"}``.
                An optional ``meta_field`` key holds a mapping of extra information.
            types: The data types (keys) every record must have. Defaults to the keys of the
                first record other than ``id_field`` and ``meta_field``, in order.
            id_field: Key holding each item's id. When no record has it, ids are generated
                as ``"<name>-00000"``, ``"<name>-00001"``, ...
            meta_field: Key holding each item's meta mapping.
            name: Name of the data set.

        Returns:
            The validated data set.

        Raises:
            ParallelDataError: If the records are empty, misaligned, contain blank or
                non-string texts, or have duplicate ids.
        """
        located = [(rec, f"records[{i}]") for i, rec in enumerate(records)]
        return cls._from_located(
            located, types=types, id_field=id_field, meta_field=meta_field, name=name
        )

    @classmethod
    def from_jsonl(
        cls,
        path: str | os.PathLike[str],
        *,
        types: Sequence[str] | None = None,
        id_field: str = ID_FIELD,
        meta_field: str = META_FIELD,
        name: str | None = None,
    ) -> ParallelData:
        """Loads parallel data from a UTF-8 JSON-lines file (one JSON object per line).

        Blank lines are skipped. Arguments are as in :meth:`from_records`; ``name``
        defaults to the file's stem.

        Raises:
            ParallelDataError: On unreadable files, malformed JSON (with the line number) or
                any validation error of :meth:`from_records` (with the line number).
        """
        path = Path(path)
        located = read_jsonl(path)
        return cls._from_located(
            located,
            types=types,
            id_field=id_field,
            meta_field=meta_field,
            name=name or path.stem,
            source=str(path),
        )

    @classmethod
    def from_tsv(
        cls,
        path: str | os.PathLike[str],
        *,
        id_field: str = ID_FIELD,
        name: str | None = None,
    ) -> ParallelData:
        """Loads parallel data from a UTF-8 tab-separated file with a header row.

        The header names the data types; an optional column named ``id_field`` holds ids.
        Values are not quoted (a TSV value cannot contain a tab or a newline).

        Raises:
            ParallelDataError: On a missing or duplicated header, a row with the wrong number
                of fields, blank values (each with the line number).
        """
        return cls._delimited(Path(path), delimiter="\t", id_field=id_field, name=name)

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike[str],
        *,
        id_field: str = ID_FIELD,
        name: str | None = None,
    ) -> ParallelData:
        """Loads parallel data from a UTF-8 comma-separated file with a header row.

        Standard CSV quoting applies. Otherwise as :meth:`from_tsv`.
        """
        return cls._delimited(Path(path), delimiter=",", id_field=id_field, name=name)

    @classmethod
    def load(cls, source: Any, **kwargs: Any) -> ParallelData:
        """Loads parallel data from whatever ``source`` is.

        Args:
            source: A :class:`ParallelData` (returned unchanged), a path ending in
                ``.jsonl``, ``.tsv`` or ``.csv``, the name of a built-in data set (see
                ``hublens.data.BUILTIN_DATASETS``), or a list of record dictionaries.
            **kwargs: Passed on to the chosen constructor or to ``load_builtin``.

        Returns:
            The validated data set.

        Raises:
            ParallelDataError: If ``source`` is of an unsupported kind, a path with an
                unsupported suffix or that does not exist, or an unknown built-in name.
        """
        from .builtin import BUILTIN_DATASETS, load_builtin

        if isinstance(source, ParallelData):
            return source
        if isinstance(source, (list, tuple)):
            return cls.from_records(source, **kwargs)
        if isinstance(source, (str, os.PathLike)):
            text = os.fspath(source)
            if isinstance(source, str) and source in BUILTIN_DATASETS:
                return load_builtin(source, **kwargs)
            path = Path(text)
            suffix = path.suffix.lower()
            if suffix not in _SUFFIXES:
                if suffix == "" and not path.exists():
                    raise ParallelDataError(
                        f"unknown built-in data set {text!r}; available: "
                        f"{', '.join(BUILTIN_DATASETS)} (or give a .jsonl/.tsv/.csv path)."
                    )
                raise ParallelDataError(
                    f"unsupported file suffix {path.suffix!r} for {text!r}; use one of "
                    f"{', '.join(_SUFFIXES)}, or pass a built-in name "
                    f"({', '.join(BUILTIN_DATASETS)})."
                )
            if suffix == ".jsonl":
                return cls.from_jsonl(path, **kwargs)
            if suffix == ".tsv":
                return cls.from_tsv(path, **kwargs)
            return cls.from_csv(path, **kwargs)
        raise ParallelDataError(
            f"cannot load parallel data from a {type(source).__name__}; pass a ParallelData, "
            "a .jsonl/.tsv/.csv path, a built-in name or a list of dicts."
        )

    # ------------------------------------------------------------------ access

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[ParallelItem]:
        for item_id, item, meta in zip(self.ids, self.items, self.meta, strict=True):
            yield ParallelItem(id=item_id, texts=item, meta=meta)

    def __getitem__(self, index: int) -> ParallelItem:
        """Returns item ``index`` (negative indices count from the end)."""
        return ParallelItem(id=self.ids[index], texts=self.items[index], meta=self.meta[index])

    def __hash__(self) -> int:
        return hash(self.content_hash())

    def column(self, data_type: str) -> list[str]:
        """Returns the texts of every item in one data type, in item order.

        Raises:
            ParallelDataError: If ``data_type`` is not one of :attr:`types`.
        """
        self._check_type_name(data_type, "data_type")
        return [item[data_type] for item in self.items]

    def pairs(self, a: str, b: str) -> list[tuple[str, str]]:
        """Returns ``(text in a, text in b)`` for every item.

        Raises:
            ParallelDataError: If ``a`` or ``b`` is not one of :attr:`types`.
        """
        self._check_type_name(a, "a")
        self._check_type_name(b, "b")
        return [(item[a], item[b]) for item in self.items]

    def meta_column(self, key: str) -> list[Any]:
        """Returns ``meta[key]`` of every item.

        Raises:
            ParallelDataError: If some item's meta lacks ``key``.
        """
        for index, meta in enumerate(self.meta):
            if key not in meta:
                raise ParallelDataError(
                    f"item {index} ({self.ids[index]!r}) of {self.name!r} has no meta field "
                    f"{key!r}; available: {sorted(meta) or 'none'}."
                )
        return [meta[key] for meta in self.meta]

    # ------------------------------------------------------------------ derived sets

    def select(self, indices: Iterable[int], *, name: str | None = None) -> ParallelData:
        """Returns the items at ``indices``, in the order given.

        Raises:
            ParallelDataError: If an index is out of range or repeated, or none is given.
        """
        chosen = list(indices)
        seen: set[int] = set()
        for index in chosen:
            if not isinstance(index, int) or isinstance(index, bool):
                raise ParallelDataError(f"select(): index {index!r} is not an int.")
            if not -len(self) <= index < len(self):
                raise ParallelDataError(
                    f"select(): index {index} is out of range for {len(self)} items."
                )
            normal = index % len(self)
            if normal in seen:
                raise ParallelDataError(
                    f"select(): index {index} is repeated; ids must stay unique."
                )
            seen.add(normal)
        return ParallelData(
            types=self.types,
            items=tuple(self.items[i] for i in chosen),
            ids=tuple(self.ids[i] for i in chosen),
            meta=tuple(self.meta[i] for i in chosen),
            name=name or self.name,
            builtin=self.builtin,
        )

    def subset(self, n: int, *, seed: int | None = None) -> ParallelData:
        """Returns at most ``n`` items: the first ``n``, or a seeded random sample.

        Args:
            n: Number of items wanted (all items are returned when ``n >= len(self)``).
            seed: If given, sample ``n`` items with ``random.Random(seed)``, keeping the
                original item order; otherwise take the first ``n``.

        Raises:
            ParallelDataError: If ``n < 1``.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ParallelDataError(f"subset(): n must be a positive int, got {n!r}.")
        if n >= len(self):
            return self
        if seed is None:
            indices = list(range(n))
        else:
            indices = sorted(random.Random(seed).sample(range(len(self)), n))
        return self.select(indices)

    def batches(self, batch_size: int) -> Iterator[ParallelData]:
        """Yields consecutive chunks of at most ``batch_size`` items.

        Raises:
            ParallelDataError: If ``batch_size < 1``.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ParallelDataError(
                f"batches(): batch_size must be a positive int, got {batch_size!r}."
            )
        for start in range(0, len(self), batch_size):
            yield self.select(range(start, min(start + batch_size, len(self))))

    def require(self, n: int, *, statistic: str = "this computation") -> ParallelData:
        """Checks that there are at least ``n`` items and returns ``self``.

        Args:
            n: Minimum number of items, e.g. 2 for a baseline-adjusted cosine similarity
                (it averages over pairs i != j) or for a 95% confidence interval.
            statistic: What needs them, for the error message.

        Raises:
            ParallelDataError: If the data set has fewer than ``n`` items.
        """
        if len(self) < n:
            raise ParallelDataError(
                f"{statistic} needs at least {n} items, but data set {self.name!r} has "
                f"{len(self)}; add items or use a larger data set."
            )
        return self

    # ------------------------------------------------------------------ export

    def to_records(self) -> list[dict[str, Any]]:
        """Returns one plain dictionary per item: ``id``, every type, and ``meta`` if any.

        ``ParallelData.from_records(d.to_records(), name=d.name) == d`` holds.
        """
        records = []
        for item in self:
            record: dict[str, Any] = {ID_FIELD: item.id, **item.texts}
            if item.meta:
                record[META_FIELD] = json.loads(_canonical_json(dict(item.meta)))
            records.append(record)
        return records

    def to_jsonl(self, path: str | os.PathLike[str]) -> Path:
        """Writes the data set as UTF-8 JSON lines (see :meth:`to_records`)."""
        path = Path(path)
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            for record in self.to_records():
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return path

    def content_hash(self) -> str:
        """Returns the SHA-256 hex digest of a canonical JSON encoding of the content.

        The encoding covers types, ids, texts and meta (not :attr:`name`), with sorted
        keys and no whitespace, so it identifies the exact data a result was computed on.
        """
        payload = {
            "types": list(self.types),
            "ids": list(self.ids),
            "items": [[item[t] for t in self.types] for item in self.items],
            "meta": [dict(m) for m in self.meta],
        }
        return hashlib.sha256(_canonical_json(payload).encode("utf-8")).hexdigest()

    def provenance(self) -> dict[str, Any]:
        """Returns name, size, types and content hash, for recording alongside results."""
        return {
            "name": self.name,
            "n_items": len(self),
            "types": list(self.types),
            "content_hash": self.content_hash(),
        }

    # ------------------------------------------------------------------ internals

    def _check_type_name(self, data_type: str, argument: str) -> None:
        if data_type not in self.types:
            raise ParallelDataError(
                f"argument {argument!r}: unknown data type {data_type!r} in {self.name!r}; "
                f"available: {', '.join(self.types)}."
            )

    @classmethod
    def _from_located(
        cls,
        located: Sequence[tuple[Mapping[str, Any], str]],
        *,
        types: Sequence[str] | None,
        id_field: str,
        meta_field: str,
        name: str,
        source: str = "argument 'records'",
    ) -> ParallelData:
        checked, items, ids, metas = validate_located(
            located, types=types, id_field=id_field, meta_field=meta_field, name=name, source=source
        )
        return cls(types=checked, items=tuple(items), ids=tuple(ids), meta=tuple(metas), name=name)

    @classmethod
    def _delimited(
        cls, path: Path, *, delimiter: str, id_field: str, name: str | None
    ) -> ParallelData:
        located, types = read_delimited(path, delimiter=delimiter, id_field=id_field)
        return cls._from_located(
            located,
            types=types,
            id_field=id_field,
            meta_field="\0no-meta",
            name=name or path.stem,
            source=str(path),
        )
