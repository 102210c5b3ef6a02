"""Code probes: list conjunctions and call arguments read through the logit lens (experiment 3)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from hublens.analyses.probe_base import LensProbe, Request, Target
from hublens.data import ParallelData
from hublens.registry import register_analysis

__all__ = ["CodeArgsProbe", "CodeListProbe"]


def _source_gap(
    meta: Mapping[str, Any], code: str, offset_key: str, files: dict[str, str | None]
) -> tuple[str | None, bool]:
    """Whitespace between the end of ``code`` and the next element, and whether it is exact.

    Read from the standard-library file the item came from (``meta["file"]``, ``start``,
    ``end``) when it is there and matches; otherwise guessed from the offsets (0 characters:
    none; 1: a space; more: a newline and indentation) and marked as guessed. None when the
    meta has no offsets.
    """
    end, nxt = meta.get("end"), meta.get(offset_key)
    if not isinstance(end, int) or not isinstance(nxt, int) or nxt < end:
        return None, False
    relpath, start = meta.get("file"), meta.get("start")
    if isinstance(relpath, str) and isinstance(start, int):
        if relpath not in files:
            from hublens.data.builtin.code import stdlib_root

            try:
                files[relpath] = (Path(stdlib_root()) / relpath).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                files[relpath] = None
        text = files[relpath]
        if text is not None and text[start:end] == code and not text[end:nxt].strip():
            return text[end:nxt], True
    width = nxt - end
    return ("" if width == 0 else " " if width == 1 else "\n" + " " * (width - 1)), False


@register_analysis("code_list_lens")
@dataclass(kw_only=True)
class CodeListProbe(LensProbe):
    """Code lists: at a comma between list elements, p(" and") vs p(" or"), p(" not"), next.

    The prompt is the item's ``code`` (a source prefix ending with the comma). Read at its last
    token: ``" and"``, ``" or"``, ``" not"`` and the first token of the true next element
    ``next`` as it follows the comma: ``" " + next`` when whitespace separates them in the
    source, ``next`` otherwise. In a list written one element per line the literal next token
    is a newline, which says nothing about the element, so such items read the element in its
    leading-space form too and are reported in group ``"multiline"`` (one-line lists:
    ``"inline"``; both: ``"all"``). The whitespace is taken from the standard-library file the
    item came from (meta ``file``/``start``/``end``/``next_offset``); without that file it is
    guessed from the offsets, and without offsets one space is assumed; both are counted in
    ``options["gap_guessed"]``.

    Metrics: ``logp_and``, ``logp_or``, ``logp_not``, ``logp_next``, ``frac_and_gt_or``.
    """

    name: str = "code_list_lens"

    required_types: ClassVar[tuple[str, ...]] = ("code", "next")
    metrics: ClassVar[tuple[str, ...]] = (
        "logp_and",
        "logp_or",
        "logp_not",
        "logp_next",
        "frac_and_gt_or",
    )

    def n_targets(self) -> int:
        """Four target slots per query."""
        return 4

    def _builtin_hint(self) -> str:
        return "code-lists"

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[Request | str]:
        files: dict[str, str | None] = {}
        guessed = 0
        requests: list[Request | str] = []
        for i in range(n_items):
            code, nxt = data.items[i]["code"], data.items[i]["next"].strip()
            gap, exact = _source_gap(data.meta[i], code, "next_offset", files)
            if gap is None:
                gap = " "
            guessed += not exact
            layout = "multiline" if "\n" in gap or "\r" in gap else "inline"
            targets = (
                Target("and", True),
                Target("or", True),
                Target("not", True),
                Target(nxt, bool(gap)),
            )
            requests.append(Request(code, targets, ("all", layout), distinct=(0, 1, 2)))
        self.options["gap_guessed"] = guessed
        return requests

    def _metric_values(self, logp: Tensor) -> Tensor:
        values = [logp[..., k] for k in range(4)]
        return torch.stack([*values, (logp[..., 0] > logp[..., 1]).double()], dim=1)


@register_analysis("code_args_lens")
@dataclass(kw_only=True)
class CodeArgsProbe(LensProbe):
    """Code arguments: before an argument, p(parameter name) vs p(the actual argument).

    The prompt is the item's ``code`` (ending with the ``(`` or ``,`` before the argument).
    Both the parameter name ``param`` (the semantic role) and the argument text ``arg`` (the
    surface form) are read by their first token as they would follow there: without a leading
    space right after ``(`` with nothing between, with one when whitespace separates them
    (``", arg"``; an argument on the next line also counts as space-separated). The whitespace
    comes from the source file (meta ``file``/``start``/``end``/``arg_offset``) or is guessed
    as for :class:`CodeListProbe` (counted in ``options["gap_guessed"]``); without offsets, none
    after ``(`` and one space after anything else. Items whose param and arg share that token
    are skipped and counted.

    Metrics: ``logp_param``, ``logp_arg``, ``frac_param_gt_arg``; groups ``"all"``,
    ``"after_paren"``, ``"after_comma"``.
    """

    name: str = "code_args_lens"

    required_types: ClassVar[tuple[str, ...]] = ("code", "param", "arg")
    metrics: ClassVar[tuple[str, ...]] = ("logp_param", "logp_arg", "frac_param_gt_arg")

    def n_targets(self) -> int:
        """Two target slots per query."""
        return 2

    def _builtin_hint(self) -> str:
        return "code-args"

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[Request | str]:
        files: dict[str, str | None] = {}
        guessed = 0
        requests: list[Request | str] = []
        for i in range(n_items):
            item = data.items[i]
            code = item["code"]
            gap, exact = _source_gap(data.meta[i], code, "arg_offset", files)
            if gap is None:
                gap = "" if code.endswith("(") else " "
            guessed += not exact
            after = {"(": "after_paren", ",": "after_comma"}.get(code.rstrip()[-1:], "after_other")
            space = bool(gap)
            targets = (Target(item["param"].strip(), space), Target(item["arg"].strip(), space))
            requests.append(Request(code, targets, ("all", after)))
        self.options["gap_guessed"] = guessed
        return requests

    def _metric_values(self, logp: Tensor) -> Tensor:
        param, arg = logp[..., 0], logp[..., 1]
        return torch.stack([param, arg, (param > arg).double()], dim=1)
