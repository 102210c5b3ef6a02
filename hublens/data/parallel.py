"""Aligned ("parallel") items across two or more data types.

A :class:`ParallelData` holds items that mean the same thing in several data types, for
example the same sentence in English and Chinese, ``"3+2"`` and ``"three plus two"``, or
an English sentence and its logical form. Every experiment in hublens reads its inputs
from one. The class is immutable, validates its contents on construction and raises
:class:`ParallelDataError` with a message that names the offending argument, file or line
and says how to fix it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

__all__ = ["ParallelData", "ParallelDataError", "ParallelItem"]

ID_FIELD = "id"
META_FIELD = "meta"
_SUFFIXES = (".jsonl", ".tsv", ".csv")
_NEWLINE = re.compile(r"\r\n|\r|\n")


class ParallelDataError(ValueError):
    """Raised when parallel data is malformed, misaligned or too small for a statistic."""


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


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


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
        located = []
        for lineno, line in _read_lines(path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ParallelDataError(
                    f"{path}, line {lineno}: malformed JSON ({exc.msg} at column {exc.colno}); "
                    "each line must be one JSON object such as "
                    '{"id": "1", "en": "dog", "zh": "狗"}.'
                ) from exc
            if not isinstance(record, dict):
                raise ParallelDataError(
                    f"{path}, line {lineno}: expected a JSON object, got "
                    f"{type(record).__name__}; write one object per line."
                )
            located.append((record, f"{path}, line {lineno}"))
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
        return cls._from_delimited(Path(path), delimiter="\t", id_field=id_field, name=name)

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
        return cls._from_delimited(Path(path), delimiter=",", id_field=id_field, name=name)

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
        if not located:
            raise ParallelDataError(
                f"{source} holds no items; parallel data needs at least one item."
            )
        for record, where in located:
            if not isinstance(record, Mapping):
                raise ParallelDataError(
                    f"{where}: expected a mapping of data type to text, got "
                    f"{type(record).__name__}."
                )
        first, first_where = located[0]
        if types is None:
            types = [k for k in first if k not in (id_field, meta_field)]
            where_types = f"{first_where} (types are taken from the first item)"
        else:
            types = list(types)
            where_types = "argument 'types'"
        _check_types(tuple(types), where=where_types)
        has_ids = [id_field in record for record, _ in located]
        all_ids = all(has_ids)  # once: testing it per record made parsing quadratic
        if any(has_ids) and not all_ids:
            index = has_ids.index(False)
            raise ParallelDataError(
                f"{located[index][1]}: missing {id_field!r} while other items have one; "
                "give every item an id or none."
            )
        items, ids, metas = [], [], []
        for index, (record, where) in enumerate(located):
            texts = {k: v for k, v in record.items() if k not in (id_field, meta_field)}
            _check_item(texts, tuple(types), where=where)
            meta = record.get(meta_field, {})
            if not isinstance(meta, Mapping):
                raise ParallelDataError(
                    f"{where}: field {meta_field!r} must be an object/mapping, got "
                    f"{type(meta).__name__}."
                )
            _check_meta(meta, where=where)
            if all_ids:
                item_id = record[id_field]
                if isinstance(item_id, int) and not isinstance(item_id, bool):
                    item_id = str(item_id)
                _check_id(item_id, where=where)
            else:
                item_id = f"{name}-{index:05d}"
            items.append({t: texts[t] for t in types})
            ids.append(item_id)
            metas.append(meta)
        first_seen: dict[str, str] = {}
        for item_id, (_, where) in zip(ids, located, strict=True):
            if item_id in first_seen:
                raise ParallelDataError(
                    f"{where}: duplicate id {item_id!r} (first used at {first_seen[item_id]}); "
                    "ids must be unique: rename or drop one of the two items."
                )
            first_seen[item_id] = where
        return cls(
            types=tuple(types), items=tuple(items), ids=tuple(ids), meta=tuple(metas), name=name
        )

    @classmethod
    def _from_delimited(
        cls, path: Path, *, delimiter: str, id_field: str, name: str | None
    ) -> ParallelData:
        kind = "TSV" if delimiter == "\t" else "CSV"
        # csv.reader sees the text with its line endings (newline=""), so a quoted field keeps
        # its newlines and reader.line_num counts physical lines.
        text = io.StringIO(_read_text(path), newline="")
        if delimiter == "\t":
            reader = csv.reader(text, delimiter="\t", quoting=csv.QUOTE_NONE)
        else:
            reader = csv.reader(text, delimiter=",")
        rows, end = [], 0
        try:
            for row in reader:  # a row's number is the physical line it starts on
                rows.append((end + 1, row))
                end = reader.line_num
        except csv.Error as exc:
            raise ParallelDataError(
                f"{path}, line {reader.line_num}: malformed {kind} ({exc}); fix the quoting."
            ) from exc
        rows = [(lineno, row) for lineno, row in rows if row and any(c.strip() for c in row)]
        if not rows:
            raise ParallelDataError(
                f"{path}: empty {kind} file; the first row must name the data types, "
                "e.g. 'id<sep>en<sep>zh', followed by one row per item."
            )
        header_line, header = rows[0]
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            duplicate = next(h for h in header if header.count(h) > 1)
            raise ParallelDataError(
                f"{path}, line {header_line}: header repeats column {duplicate!r}; "
                "each data type must appear once."
            )
        if any(not h for h in header):
            raise ParallelDataError(
                f"{path}, line {header_line}: header has an empty column name; name every column."
            )
        types = [h for h in header if h != id_field]
        _check_types(tuple(types), where=f"{path}, line {header_line} (header)")
        if len(rows) == 1:
            raise ParallelDataError(
                f"{path}: the {kind} file has a header but no items; add one row per item."
            )
        located = []
        for lineno, row in rows[1:]:
            if len(row) != len(header):
                raise ParallelDataError(
                    f"{path}, line {lineno}: {len(row)} fields but the header has "
                    f"{len(header)} ({', '.join(header)}); the row is misaligned: "
                    "give exactly one value per column."
                )
            located.append((dict(zip(header, row, strict=True)), f"{path}, line {lineno}"))
        return cls._from_located(
            located,
            types=types,
            id_field=id_field,
            meta_field="\0no-meta",
            name=name or path.stem,
            source=str(path),
        )


# ---------------------------------------------------------------------- validation helpers


def _read_lines(path: Path) -> list[tuple[int, str]]:
    lines = _NEWLINE.split(_read_text(path))
    if lines and lines[-1] == "":
        lines.pop()
    return list(enumerate(lines, start=1))


def _read_text(path: Path) -> str:
    try:
        # bytes, decoded: read_text would turn a quoted field's "\r\n" into "\n"
        return path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise ParallelDataError(f"{path}: no such file; check the path.") from exc
    except UnicodeDecodeError as exc:
        raise ParallelDataError(
            f"{path}: not valid UTF-8 (byte {exc.start}); save the file as UTF-8."
        ) from exc
    except OSError as exc:
        raise ParallelDataError(f"{path}: cannot read file ({exc}).") from exc


def _check_types(types: tuple[str, ...], *, where: str) -> None:
    if len(types) < 2:
        raise ParallelDataError(
            f"{where}: parallel data needs at least two data types, got {len(types)} "
            f"({', '.join(map(repr, types)) or 'none'}); add a second column such as 'zh'."
        )
    for data_type in types:
        if not isinstance(data_type, str) or not data_type.strip():
            raise ParallelDataError(
                f"{where}: data type names must be non-empty strings, got {data_type!r}."
            )
    if len(set(types)) != len(types):
        raise ParallelDataError(f"{where}: data types repeat: {types}; name each once.")


def _check_id(item_id: Any, *, where: str) -> None:
    if not isinstance(item_id, str) or not item_id.strip():
        raise ParallelDataError(f"{where}: id must be a non-empty string, got {item_id!r}.")


def _check_item(item: Mapping[str, Any], types: tuple[str, ...], *, where: str) -> None:
    if not isinstance(item, Mapping):
        raise ParallelDataError(f"{where}: expected a mapping, got {type(item).__name__}.")
    missing = [t for t in types if t not in item]
    extra = [k for k in item if k not in types]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing field(s) {', '.join(map(repr, missing))}")
        if extra:
            parts.append(f"extra field(s) {', '.join(map(repr, extra))}")
        raise ParallelDataError(
            f"{where}: misaligned item: {' and '.join(parts)}; every item must have exactly "
            f"the data types {', '.join(map(repr, types))} (put other information in 'meta')."
        )
    for data_type in types:
        value = item[data_type]
        if not isinstance(value, str):
            raise ParallelDataError(
                f"{where}: field {data_type!r} must be a string, got "
                f'{type(value).__name__} {value!r}; quote it (e.g. "{value}").'
            )
        if not value.strip():
            raise ParallelDataError(
                f"{where}: field {data_type!r} is empty or whitespace only; give its text "
                "or drop the item."
            )


def _check_meta(meta: Mapping[str, Any], *, where: str) -> None:
    if not isinstance(meta, Mapping):
        raise ParallelDataError(f"{where}: meta must be a mapping, got {type(meta).__name__}.")
    try:
        _canonical_json(dict(meta))
    except (TypeError, ValueError) as exc:
        raise ParallelDataError(
            f"{where}: meta must be JSON-serialisable (str, int, float, bool, None, lists "
            f"and dicts): {exc}."
        ) from exc
