"""Semantic roles read through the logit lens before each proper name (experiment 4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from hublens.analyses.probe_base import LensProbe, Request, Target, require_meta
from hublens.data import ParallelData
from hublens.registry import register_analysis

__all__ = ["SemanticsRoleProbe"]


@register_analysis("semantics_role_lens")
@dataclass(kw_only=True)
class SemanticsRoleProbe(LensProbe):
    """Semantic roles: before each proper name, p(its role word) vs p(the other roles).

    For every name of a sentence (meta ``name_offsets``, ``name_roles``), the prompt is the
    sentence up to the name. With a tokenizer that writes the space into the next word's token
    (``"▁Liam"``, ``"ĠLiam"``) the trailing space is cut from the prefix and the role words are
    read with a leading space (``" agent"``); with one that keeps spaces apart, the prefix keeps
    its space and the roles are read without. A name at the very start has no prefix: that
    occurrence is skipped and counted (``skip_reasons["name_at_start"]``).

    Metrics: ``logp_correct``, ``logp_other_max`` (the most probable wrong role),
    ``frac_correct_gt_others``; groups ``"all"`` and the correct role (``"agent"``, ...).

    Attributes:
        roles: The role words; every ``name_roles`` value must be one of them.
    """

    name: str = "semantics_role_lens"
    roles: tuple[str, ...] = ("agent", "theme", "recipient")

    required_types: ClassVar[tuple[str, ...]] = ("sentence",)
    metrics: ClassVar[tuple[str, ...]] = (
        "logp_correct",
        "logp_other_max",
        "frac_correct_gt_others",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        self.roles = tuple(self.roles)
        if len(self.roles) < 2 or len(set(self.roles)) != len(self.roles):
            raise ValueError(f"roles={self.roles!r}: pass at least two distinct role words.")
        if any(not r or r != r.strip() for r in self.roles):
            raise ValueError(f"roles={self.roles!r}: role words must be bare non-empty words.")
        self.options["roles"] = list(self.roles)

    def n_targets(self) -> int:
        """The correct role, then the others."""
        return len(self.roles)

    def _builtin_hint(self) -> str:
        return "semantics"

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[Request | str]:
        marker = bool(model.convention.space_marker)
        requests: list[Request | str] = []
        for i in range(n_items):
            meta = require_meta(data, i, ("name_offsets", "name_roles"))
            sentence = data.items[i]["sentence"]
            offsets, roles = meta["name_offsets"], meta["name_roles"]
            for name, offset in sorted(offsets.items(), key=lambda kv: kv[1]):
                if not isinstance(offset, int) or not sentence[offset:].startswith(name):
                    raise ValueError(
                        f"item {i} ({data.ids[i]!r}): meta['name_offsets'][{name!r}]={offset!r} "
                        f"does not point at {name!r} in {sentence!r}; fix the offset."
                    )
                role = roles.get(name)
                if role not in self.roles:
                    raise ValueError(
                        f"item {i} ({data.ids[i]!r}): meta['name_roles'][{name!r}]={role!r} is "
                        f"not one of roles={self.roles}; pass roles=... that include it."
                    )
                prefix = sentence[:offset]
                stripped = prefix.rstrip(" ")
                text, space = (stripped, stripped != prefix) if marker else (prefix, False)
                if not text.strip():
                    requests.append("name_at_start")
                    continue
                order = [role, *(r for r in self.roles if r != role)]
                requests.append(
                    Request(text, tuple(Target(r, space) for r in order), ("all", role))
                )
        return requests

    def _metric_values(self, logp: Tensor) -> Tensor:
        correct, other = logp[..., 0], logp[..., 1:].max(-1).values
        return torch.stack([correct, other, (correct > other).double()], dim=1)
