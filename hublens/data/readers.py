"""Reading parallel data files: JSON lines, TSV and CSV, each row with its location."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from hublens.data.validation import ParallelDataError, _check_types

_NEWLINE = re.compile(r"\r\n|\r|\n")


def read_jsonl(path: Path) -> list[tuple[dict[str, Any], str]]:
    """Objects of a JSON-lines file (blank lines skipped), each with its location."""
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
    return located


def read_delimited(
    path: Path, *, delimiter: str, id_field: str
) -> tuple[list[tuple[dict[str, str], str]], list[str]]:
    """Rows of a TSV/CSV file with a header, as located records (record, where) and types."""
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
    return located, types


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
