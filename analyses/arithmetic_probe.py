"""Arithmetic logit lens: numeral vs English number word (the paper's experiment 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from hublens.analyses.probe_base import LensProbe, Request, Target, require_meta
from hublens.data import ParallelData
from hublens.registry import register_analysis

__all__ = ["ArithmeticProbe"]


def _number_word(number: int) -> str:
    import inflect

    return str(inflect.engine().number_to_words(str(number)))


@register_analysis("arithmetic_lens")
@dataclass(kw_only=True)
class ArithmeticProbe(LensProbe):
    """Arithmetic logit lens: p(numeral) vs p(English number word) on ``"5=3+"``.

    The prompt is ``meta["lens_prompt"]`` (``"result=other+"`` or ``"result=other*"``); the
    answer ``meta["lens_answer"]`` is read as a numeral without a leading space (``"2"``) and as
    its English word, spelled by ``inflect``, with one (``" two"``), as the paper does.

    Metrics: ``logp_numeral``, ``logp_word``, ``frac_word_gt_numeral``; groups ``"all"``,
    ``"add"`` and ``"mul"`` (by ``meta["op"]``, when present).
    """

    name: str = "arithmetic_lens"

    metrics: ClassVar[tuple[str, ...]] = ("logp_numeral", "logp_word", "frac_word_gt_numeral")

    def n_targets(self) -> int:
        """Two target slots per query."""
        return 2

    def _builtin_hint(self) -> str:
        return "arithmetic"

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[Request | str]:
        requests: list[Request | str] = []
        op_groups = {"+": "add", "*": "mul"}
        for i in range(n_items):
            meta = require_meta(data, i, ("lens_prompt", "lens_answer"))
            answer = meta["lens_answer"]
            if isinstance(answer, bool) or not isinstance(answer, int) or answer < 0:
                raise ValueError(
                    f"item {i} ({data.ids[i]!r}): meta['lens_answer']={answer!r} must be a "
                    "non-negative int."
                )
            prompt = meta["lens_prompt"]
            if not isinstance(prompt, str) or not prompt:
                raise ValueError(
                    f"item {i} ({data.ids[i]!r}): meta['lens_prompt']={prompt!r} must be a "
                    "non-empty string such as '5=3+'."
                )
            groups = ("all", op_groups[meta["op"]]) if meta.get("op") in op_groups else ("all",)
            requests.append(
                Request(
                    text=prompt,
                    targets=(Target(str(answer), False), Target(_number_word(answer), True)),
                    groups=groups,
                )
            )
        return requests

    def _metric_values(self, logp: Tensor) -> Tensor:
        numeral, word = logp[..., 0], logp[..., 1]
        return torch.stack([numeral, word, (word > numeral).double()], dim=1)
