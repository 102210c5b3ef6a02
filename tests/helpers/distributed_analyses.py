"""Analyses and data shared by the distributed tests and their torchrun worker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from hublens.analyses import Similarity, TranslationLens
from hublens.analysis import Analysis, Query, Row
from hublens.stats import KeyedStat, MeanStat, Stat

RECORDS = [
    {"en": "The cat sleeps on the mat.", "zh": "猫在温暖的垫子上睡觉。", "fr": "Le chat dort."},
    {"en": "three plus two equals five", "zh": "三加二等于五", "fr": "trois plus deux"},
    {"en": "flower", "zh": "花", "fr": "fleur"},
    {"en": "def add(a, b): return a + b", "zh": "加法", "fr": "Le tapis chaud."},
    {"en": "3+2=5 and 4*2=8", "zh": "猫在睡觉", "fr": "Français: fleur"},
    {"en": "The warm cat.", "zh": "温暖的猫", "fr": "Le chat chaud."},
    {"en": "two plus three", "zh": "二加三", "fr": "deux plus trois"},
    {"en": "Flower fleur Blume", "zh": "花朵", "fr": "fleur Blume flor"},
    {"en": "return [a, b]", "zh": "返回", "fr": "retour"},
    {"en": "4*2=8", "zh": "四乘二等于八", "fr": "quatre fois deux"},
    {"en": "The mat is warm.", "zh": "垫子很温暖", "fr": "Le tapis est chaud."},
]
# Groups: "solo" exists only at item 0, so with two strided ranks only rank 0 sees it.
GROUPS = ["solo", "a", "b", "a", "b", "a", "b", "c", "c", "a", "b"]


def records() -> list[dict[str, Any]]:
    return [{**r, "meta": {"group": g}} for r, g in zip(RECORDS, GROUPS, strict=True)]


@dataclass
class GroupNorm(Analysis):
    """Mean norm of the last-token state per meta group; MeanStats created lazily per group.

    Written against the public contract only (:class:`KeyedStat` + ``statistics()``), as a
    user's own analysis would be.
    """

    name: str = "group_norm"

    def queries(self, model: Any, data: Any) -> list[Query]:
        self._groups = [str(g) for g in data.meta_column("group")]
        self._stats: KeyedStat[MeanStat] = KeyedStat(MeanStat)
        return [Query(text) for text in data.column("en")]

    def setup(self, model: Any, layers: Sequence[int]) -> None:
        self._stats = KeyedStat(MeanStat)

    def statistics(self) -> list[Stat]:
        return [self._stats]

    def update(self, indices: Sequence[int], states: Sequence[torch.Tensor]) -> None:
        for index, state in zip(indices, states, strict=True):
            group = self._groups[index]
            self._stats.slot(group).add(state[:, 0].norm(dim=-1)[None])

    def finalize(self, layers: Sequence[int]) -> list[Row]:
        rows = []
        for group, stat in sorted(self._stats.items(), key=lambda kv: kv[0]):
            mean, low, high = stat.ci()
            rows += [
                Row(self.name, layer, "norm", group, float(mean[k]), float(low[k]),
                    float(high[k]), stat.n)
                for k, layer in enumerate(layers)
            ]
        return rows


def make_analyses() -> list[Analysis]:
    """Similarity (one pass, centred, grouped), a grouped MeanStat and a lens probe."""
    return [
        Similarity(name="similarity", cues={}),
        Similarity(name="similarity_centered", centered=True, cues={}),
        Similarity(name="similarity_grouped", pairs=[("en", "zh")], group_by="group", cues={}),
        GroupNorm(),
        TranslationLens(source="fr", target="zh", dominant="en", few_shot=0),
    ]
