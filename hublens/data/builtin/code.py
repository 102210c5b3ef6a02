"""Probe sites in real Python code: the standard library's own source files.

Both data sets are read at run time from ``sysconfig.get_paths()["stdlib"]`` (files in
sorted order of their relative path, test suites and ``site-packages`` excluded) and
parsed with :mod:`ast`, so they need no download; their exact content depends on the
Python version, which every item records in ``meta["python_version"]``.

Each item's ``"code"`` text is a *prefix* of a source file that ends exactly at the
probe position (a comma between list elements, or the ``(``/``,`` before a call
argument). It starts at the beginning of the line of the outermost enclosing statement
whose prefix fits in ``max_prefix_chars`` characters, so the model sees as much of the
surrounding definition as the budget allows. ``meta["file"]`` (relative to the stdlib
root), ``meta["start"]`` and ``meta["end"]`` locate it: ``text[start:end] == code``
where ``text`` is the file decoded as UTF-8 with newlines untranslated.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import re
import sys
import sysconfig
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Any

from ..parallel import ParallelData, ParallelDataError
from ._resources import mark_builtin

EXCLUDED_DIRS = frozenset(
    {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "lib2to3"}
)
# builtins whose first positional parameter differs between overloads, or that are variadic
AMBIGUOUS_BUILTINS = frozenset(
    {"range", "max", "min", "dict", "zip", "type", "iter", "next", "getattr", "super",
     "print", "slice", "object", "breakpoint"}
)  # fmt: skip
_NEWLINE = re.compile(r"\r\n|\r|\n")


def stdlib_root() -> Path:
    """Returns the directory of the running interpreter's standard library sources."""
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(root: Path | None = None) -> list[str]:
    """Returns the relative POSIX paths of the stdlib ``.py`` files used, in sorted order."""
    root = root or stdlib_root()
    paths = []
    for path in root.rglob("*.py"):
        relative = path.relative_to(root)
        if any(part in EXCLUDED_DIRS for part in relative.parts[:-1]):
            continue
        paths.append(relative.as_posix())
    return sorted(paths)


@dataclass(frozen=True)
class _Source:
    """A parsed source file with a map from (line, UTF-8 column) to character offset."""

    relpath: str
    text: str
    tree: ast.Module
    line_starts: tuple[int, ...]

    def offset(self, lineno: int, col_offset: int) -> int:
        start = self.line_starts[lineno - 1]
        end = self.line_starts[lineno] if lineno < len(self.line_starts) else len(self.text)
        line = self.text[start:end]
        return start + len(line.encode("utf-8")[:col_offset].decode("utf-8", errors="strict"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (
            self.offset(node.lineno, node.col_offset),  # type: ignore[attr-defined]
            self.offset(node.end_lineno, node.end_col_offset),  # type: ignore[attr-defined]
        )

    def line_start(self, lineno: int) -> int:
        return self.line_starts[lineno - 1]


def _parse(root: Path, relpath: str) -> _Source | None:
    try:
        text = (root / relpath).read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(text, filename=relpath)
    except (SyntaxError, ValueError, RecursionError):
        return None
    starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]
    return _Source(relpath=relpath, text=text, tree=tree, line_starts=tuple(starts))


def _iter_sources(root: Path) -> Iterator[_Source]:
    for relpath in stdlib_files(root):
        source = _parse(root, relpath)
        if source is not None:
            yield source


def _parents(tree: ast.AST) -> dict[ast.AST, ast.AST]:
    return {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}


def _prefix_start(
    source: _Source, node: ast.AST, parents: dict[ast.AST, ast.AST], end: int, budget: int
) -> int | None:
    """Start of the outermost enclosing statement's first line whose prefix fits ``budget``."""
    chain = []
    current: ast.AST | None = node
    while current is not None:
        if isinstance(current, ast.stmt):
            chain.append(current)
        current = parents.get(current)
    for stmt in reversed(chain):  # outermost first
        first_line = min([stmt.lineno] + [d.lineno for d in getattr(stmt, "decorator_list", [])])
        start = source.line_start(first_line)
        if end - start <= budget:
            return start
    return None


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _is_simple(node: ast.expr, source: _Source) -> bool:
    if node.lineno != node.end_lineno:
        return False
    if isinstance(node, ast.Constant):
        return not isinstance(node.value, str) or "\n" not in node.value
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Attribute):
        return _is_simple(node.value, source) and isinstance(node.value, (ast.Name, ast.Attribute))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant)
    return False


def _list_items(
    source: _Source, *, per_file: int, per_list: int, budget: int
) -> list[dict[str, Any]]:
    parents = _parents(source.tree)
    records: list[dict[str, Any]] = []
    lists = [n for n in ast.walk(source.tree) if isinstance(n, ast.List) and len(n.elts) >= 3]
    lists.sort(key=lambda n: (n.lineno, n.col_offset))
    for node in lists:
        if not all(_is_simple(e, source) for e in node.elts):
            continue
        taken = 0
        for index, (element, following) in enumerate(pairwise(node.elts)):
            if taken >= per_list or len(records) >= per_file:
                break
            _, element_end = source.span(element)
            comma = _skip(source.text, element_end, " \t")
            if comma >= len(source.text) or source.text[comma] != ",":
                continue
            end = comma + 1
            next_start, next_end = source.span(following)
            if source.text[end:next_start].strip():
                continue  # a comment follows the comma: the next token is not the element
            start = _prefix_start(source, node, parents, end, budget)
            if start is None:
                continue
            records.append(
                {
                    "code": source.text[start:end],
                    "next": source.text[next_start:next_end],
                    "meta": {
                        "file": source.relpath,
                        "start": start,
                        "end": end,
                        "list_offset": source.span(node)[0],
                        "element_index": index,
                        "n_elements": len(node.elts),
                        "next_offset": next_start,
                        "python_version": _python_version(),
                    },
                }
            )
            taken += 1
    return records


def _bound_names(tree: ast.Module) -> dict[str, int]:
    """Counts how often each name is bound anywhere in the module."""
    counts: dict[str, int] = {}

    def bump(name: str) -> None:
        counts[name] = counts.get(name, 0) + 1

    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bump(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bump(node.name)
        elif isinstance(node, ast.arg):
            bump(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                bump((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            for name in node.names:
                bump(name)
    return counts


def _module_functions(tree: ast.Module, bound: dict[str, int]) -> dict[str, list[str]]:
    """Undecorated module-level functions bound exactly once, with positional parameters."""
    functions = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if node.decorator_list or bound.get(node.name, 0) != 1:
                continue
            functions[node.name] = [a.arg for a in node.args.posonlyargs + node.args.args]
    return functions


@cache
def _builtin_parameters(name: str) -> tuple[str, ...] | None:
    if name in AMBIGUOUS_BUILTINS or name.startswith("_"):
        return None
    function = getattr(builtins, name, None)
    if not callable(function):
        return None
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return tuple(p.name for p in signature.parameters.values() if p.kind in positional)


def _arg_items(source: _Source, *, per_file: int, budget: int) -> list[dict[str, Any]]:
    parents = _parents(source.tree)
    bound = _bound_names(source.tree)
    functions = _module_functions(source.tree, bound)
    calls = [
        n
        for n in ast.walk(source.tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.args
    ]
    # calls of the module's own functions first, then builtins; one call per callee
    calls.sort(key=lambda n: (n.func.id not in functions, n.lineno, n.col_offset))  # type: ignore[attr-defined]
    records: list[dict[str, Any]] = []
    seen_callees: set[str] = set()
    for call in calls:
        assert isinstance(call.func, ast.Name)
        callee = call.func.id
        if callee in seen_callees:
            continue
        if callee in functions:
            params: tuple[str, ...] | None = tuple(functions[callee])
            origin = "module"
        elif callee not in bound:
            params = _builtin_parameters(callee)
            origin = "builtin"
        else:
            params = None
        if not params:
            continue
        seen_callees.add(callee)
        previous: ast.expr = call.func
        for index, argument in enumerate(call.args):
            if len(records) >= per_file:
                return records
            if isinstance(argument, ast.Starred) or index >= len(params):
                break
            _, previous_end = source.span(previous)
            previous = argument
            key = _skip(source.text, previous_end, " \t\r\n)" if index else " \t")
            if key >= len(source.text) or source.text[key] != ("," if index else "("):
                continue
            arg_start, arg_end = source.span(argument)
            arg_text = source.text[arg_start:arg_end]
            if arg_text == params[index]:
                continue  # the surface form already is the role
            end = key + 1
            start = _prefix_start(source, call, parents, end, budget)
            if start is None:
                continue
            records.append(
                {
                    "code": source.text[start:end],
                    "param": params[index],
                    "arg": arg_text,
                    "meta": {
                        "file": source.relpath,
                        "start": start,
                        "end": end,
                        "callee": callee,
                        "signature_source": origin,
                        "arg_index": index,
                        "arg_offset": arg_start,
                        "python_version": _python_version(),
                    },
                }
            )
    return records


def _python_version() -> str:
    return ".".join(str(v) for v in sys.version_info[:3])


def _collect(kind: str, max_items: int, per_file: int, budget: int) -> list[dict[str, Any]]:
    root = stdlib_root()
    records: list[dict[str, Any]] = []
    for source in _iter_sources(root):
        if kind == "lists":
            found = _list_items(source, per_file=per_file, per_list=2, budget=budget)
        else:
            found = _arg_items(source, per_file=per_file, budget=budget)
        for record in found:
            if len(records) >= max_items:
                return records
            record["id"] = f"{kind}-{len(records):04d}"
            records.append(record)
    return records


def _check_caps(max_items: int, per_file: int, max_prefix_chars: int) -> None:
    for argument, value in (
        ("max_items", max_items),
        ("per_file", per_file),
        ("max_prefix_chars", max_prefix_chars),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ParallelDataError(f"argument {argument!r} must be a positive int, got {value!r}.")


@lru_cache(maxsize=8)
def _cached(kind: str, max_items: int, per_file: int, budget: int) -> tuple[dict[str, Any], ...]:
    return tuple(_collect(kind, max_items, per_file, budget))


def _build(kind: str, name: str, max_items: int, per_file: int, budget: int) -> ParallelData:
    _check_caps(max_items, per_file, budget)
    records = _cached(kind, max_items, per_file, budget)
    if not records:
        raise ParallelDataError(
            f"no {name} items found under {stdlib_root()}; the standard library sources "
            "must be installed (some minimal Python images ship only .pyc files)."
        )
    return mark_builtin(ParallelData.from_records(list(records), name=name), name)


def code_lists(
    max_items: int = 300, *, per_file: int = 4, max_prefix_chars: int = 1500
) -> ParallelData:
    """Returns commas between elements of list literals in the standard library.

    Lists with at least three simple elements (constants, names, dotted names, negative
    numbers) are used, at most two commas per list and ``per_file`` per file. Types:
    ``"code"`` (the source prefix ending with the comma) and ``"next"`` (the source text
    of the element after the comma, whose first token is the true next token). Meta:
    ``file``, ``start``, ``end`` (``end - 1`` is the comma), ``list_offset``,
    ``element_index``, ``n_elements``, ``next_offset``, ``python_version``.

    Args:
        max_items: Maximum number of items.
        per_file: Maximum number of items taken from one file.
        max_prefix_chars: Maximum length of a prefix.

    Raises:
        ParallelDataError: If an argument is not a positive int or nothing is found.
    """
    return _build("lists", "code-lists", max_items, per_file, max_prefix_chars)


def code_args(
    max_items: int = 300, *, per_file: int = 4, max_prefix_chars: int = 1500
) -> ParallelData:
    """Returns positional call arguments in the standard library with their parameter names.

    A call ``f(a, b)`` qualifies when ``f`` is a plain name bound only by one undecorated
    module-level ``def`` of the same file, or is an unshadowed builtin whose
    ``inspect.signature`` is unambiguous. Arguments whose text equals the parameter name
    are skipped. Types: ``"code"`` (the prefix ending with the ``(`` or ``,`` before the
    argument), ``"param"`` (the parameter name, the semantic role) and ``"arg"`` (the
    argument's source text, the surface form). Meta: ``file``, ``start``, ``end``,
    ``callee``, ``signature_source`` (``"module"`` or ``"builtin"``), ``arg_index``,
    ``arg_offset``, ``python_version``.

    Args:
        max_items: Maximum number of items.
        per_file: Maximum number of items taken from one file.
        max_prefix_chars: Maximum length of a prefix.

    Raises:
        ParallelDataError: If an argument is not a positive int or nothing is found.
    """
    return _build("args", "code-args", max_items, per_file, max_prefix_chars)
