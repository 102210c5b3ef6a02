"""Validation of parallel data: every check names the item's location and the fix."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


class ParallelDataError(ValueError):
    """Raised when parallel data is malformed, misaligned or too small for a statistic."""


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


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


def validate_located(
    located: Sequence[tuple[Mapping[str, Any], str]],
    *,
    types: Sequence[str] | None,
    id_field: str,
    meta_field: str,
    name: str,
    source: str = "argument 'records'",
) -> tuple[tuple[str, ...], list[dict[str, str]], list[str], list[Mapping[str, Any]]]:
    """Check located records (record, where) and return (types, items, ids, metas).

    Raises:
        ParallelDataError: Naming the record's location and the fix.
    """
    if not located:
        raise ParallelDataError(f"{source} holds no items; parallel data needs at least one item.")
    for record, where in located:
        if not isinstance(record, Mapping):
            raise ParallelDataError(
                f"{where}: expected a mapping of data type to text, got {type(record).__name__}."
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
    return tuple(types), items, ids, metas
