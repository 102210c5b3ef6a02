"""Translation and repetition prompts read through the logit lens (the paper's experiment 1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from hublens.analyses.probe_base import LensProbe, Request, Target
from hublens.data import ParallelData
from hublens.registry import register_analysis

__all__ = ["LANGUAGE_NAMES", "TranslationLens", "WordLens"]

#: Language code -> the name the prompts use (in the language itself, as Wendler et al. do).
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "zh": "中文",
    "fr": "Français",
    "de": "Deutsch",
    "es": "Español",
    "ja": "日本語",
    "ru": "Русский",
    "it": "Italiano",
    "pt": "Português",
    "ko": "한국어",
}


@register_analysis("translation_lens")
@dataclass(kw_only=True)
class TranslationLens(LensProbe):
    """Wendler-style translation prompt: does a middle layer "think" in the dominant language?

    For each item, the prompt holds ``few_shot`` demonstration pairs taken from OTHER items
    and ends right after the target language's opening quote::

        Français: "chien" - 中文: "狗"
        Français: "chat" - 中文: "猫"
        Français: "fleur" - 中文: "

    At the last position of every layer it reads the target-language word (花) and the
    dominant-language word (flower), both without a leading space (they follow the quote).

    Demonstrations (``demo_sampling``): ``"cyclic"`` takes the next items in data order,
    cyclically, skipping any that share the item's source or target word; ``"random"`` is
    Wendler et al.'s ``DataFrame.sample``: for the i-th row, ``few_shot`` distinct rows drawn
    from the other rows by ``numpy.random.RandomState(seed).choice``, one draw per row in row
    order (also for rows skipped afterwards). With ``drop_contained`` rows whose dominant word
    occurs inside the target word (case-insensitive, e.g. "taxi" in "Taxi") are dropped first,
    from queries and demonstrations alike (``options["dropped_contained"]``).

    Metrics (group ``"{source}->{target}"``): ``logp_target``, ``logp_dominant``,
    ``p_target``, ``p_dominant`` and ``frac_dominant_gt_target`` (fraction of items whose
    dominant word is more probable than the target word). Expected (the paper): the dominant
    word wins in middle layers, the target word in the last layers.

    Attributes:
        source: Language of the word to translate (a data type, e.g. ``"fr"``).
        target: Language to translate into (a data type, e.g. ``"zh"``).
        dominant: The "latent" language (a data type); None: ``model.dominant_language``.
        few_shot: Number of demonstration pairs (0 or more); None: the method's (hublens 2,
            Wendler 4).
        demo_sampling: ``"cyclic"`` or ``"random"``; None: the method's.
        seed: Seed of ``"random"`` sampling (Wendler's 42).
        skip_rule: ``"overlap"`` (skip an item whose two id sets share any id, or either is
            empty: Wendler) or ``"identical"`` (only when the sets are equal); None: the
            method's (``"overlap"`` for all).
        drop_contained: Drop rows whose dominant word occurs inside the target word; None:
            the method's (True for all).
        language_names: Overrides of :data:`LANGUAGE_NAMES` for the prompt.
    """

    name: str = "translation_lens"
    source: str = "fr"
    target: str = "zh"
    dominant: str | None = None
    few_shot: int | None = None
    demo_sampling: str | None = None
    seed: int = 42
    skip_rule: str | None = None
    drop_contained: bool | None = None
    language_names: dict[str, str] = field(default_factory=dict)

    preset: ClassVar[str] = "translation"

    metrics: ClassVar[tuple[str, ...]] = (
        "logp_target",
        "logp_dominant",
        "p_target",
        "p_dominant",
        "frac_dominant_gt_target",
    )

    def n_targets(self) -> int:
        """Two target slots per query."""
        return 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.few_shot, bool) or not isinstance(self.few_shot, int):
            raise ValueError(f"few_shot={self.few_shot!r}: pass a non-negative int.")
        if self.few_shot < 0:
            raise ValueError(f"few_shot={self.few_shot!r}: pass a non-negative int.")
        if self.demo_sampling not in ("cyclic", "random"):
            raise ValueError(f"demo_sampling={self.demo_sampling!r}: choose 'cyclic' or 'random'.")
        if self.skip_rule not in ("overlap", "identical"):
            raise ValueError(f"skip_rule={self.skip_rule!r}: choose 'overlap' or 'identical'.")
        if not isinstance(self.drop_contained, bool):
            raise ValueError(f"drop_contained={self.drop_contained!r}: pass True or False.")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r}: pass a non-negative int.")
        self.options.update(
            source=self.source,
            target=self.target,
            few_shot=self.few_shot,
            demo_sampling=self.demo_sampling,
            seed=self.seed if self.demo_sampling == "random" else None,
            skip_rule=self.skip_rule,
            drop_contained=self.drop_contained,
        )

    def _skips_empty(self) -> bool:
        return self.skip_rule == "overlap"

    def _skip_reason(self, compared: Sequence[tuple[int, ...]]) -> str | None:
        if self.skip_rule == "identical":
            if len(set(compared)) < len(compared):
                return "shared_token" if self.token_policy == "first" else "same_prefix_set"
            return None
        return super()._skip_reason(compared)

    def _builtin_hint(self) -> str:
        return "multilingual-words"

    def reads_other_items(self) -> bool:
        """Whether a prompt holds other items (few-shot demonstrations): no data sharding."""
        return bool(self.few_shot)

    def _language_name(self, code: str, argument: str) -> str:
        names = {**LANGUAGE_NAMES, **self.language_names}
        if code not in names:
            raise ValueError(
                f"{argument}={code!r} has no prompt name; pass language_names={{{code!r}: "
                f"'<name>'}} (known: {', '.join(sorted(names))})."
            )
        return names[code]

    def _group(self) -> str:
        return f"{self.source}->{self.target}"

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[Request | str]:
        dominant = self.dominant if self.dominant is not None else model.dominant_language
        self.options["dominant"] = dominant
        for argument, code in (("source", self.source), ("target", self.target)):
            if code not in data.types:
                raise ValueError(
                    f"{argument}={code!r} is not a data type of {data.name!r} "
                    f"({list(data.types)}); pick one of those."
                )
        if dominant not in data.types:
            raise ValueError(
                f"dominant={dominant!r} is not a data type of {data.name!r} ({list(data.types)});"
                " pass dominant=<a type> explicitly."
            )
        if dominant == self.target:
            raise ValueError(
                f"target={self.target!r} equals the dominant language {dominant!r}: the target "
                "word would be compared with itself; pick another target (or dominant=...)."
            )
        src_name = self._language_name(self.source, "source")
        tgt_name = self._language_name(self.target, "target")
        sources, targets, dominants = (
            data.column(self.source),
            data.column(self.target),
            data.column(dominant),
        )
        rows = list(range(len(data)))
        if self.drop_contained and self.target != dominant:
            rows = [i for i in rows if dominants[i].lower() not in targets[i].lower()]
        self.options["dropped_contained"] = len(data) - len(rows)
        few_shot = int(self.few_shot or 0)
        if few_shot > len(rows) - 1:
            raise ValueError(
                f"few_shot={few_shot} needs {few_shot + 1} items but data {data.name!r} has "
                f"{len(rows)} (after drop_contained); lower few_shot or pass more items."
            )
        rng = np.random.RandomState(self.seed)
        requests: list[Request | str] = []
        for pos, i in enumerate(rows[:n_items]):
            if self.demo_sampling == "random":
                others = rows[:pos] + rows[pos + 1 :]
                picks = [others[int(k)] for k in rng.choice(len(others), few_shot, replace=False)]
            else:
                picks = []
                for step in range(1, len(rows)):
                    if len(picks) == few_shot:
                        break
                    j = rows[(pos + step) % len(rows)]
                    if {sources[j], targets[j]} & {sources[i], targets[i]}:
                        continue  # would give the answer away
                    picks.append(j)
            if len(picks) < few_shot:
                requests.append("too_few_demonstrations")
                continue
            demos = [f'{src_name}: "{sources[j]}" - {tgt_name}: "{targets[j]}"' for j in picks]
            prompt = "\n".join([*demos, f'{src_name}: "{sources[i]}" - {tgt_name}: "'])
            requests.append(
                Request(
                    text=prompt,
                    targets=(
                        Target(targets[i], False, self.target),
                        Target(dominants[i], False, dominant),
                    ),
                    groups=(self._group(),),
                )
            )
        return requests

    def _metric_values(self, logp: Tensor) -> Tensor:
        target, dominant = logp[..., 0], logp[..., 1]
        return torch.stack(
            [target, dominant, target.exp(), dominant.exp(), (dominant > target).double()], dim=1
        )


@register_analysis("word_lens")
@dataclass(kw_only=True)
class WordLens(TranslationLens):
    """Input-language vs dominant language on a monolingual repetition cue.

    The prompt repeats words of one language ``X`` (``few_shot`` demonstrations from other
    items, then the item's word), so the correct next token is the item's own word::

        Français: "chien" - Français: "chien"
        Français: "fleur" - Français: "

    The lens compares p(X word) with p(dominant-language word) at the last position, exactly
    as :class:`TranslationLens` with ``source = target = language`` (same metrics, group
    ``"fr->fr"``). The task is a copy, so a dominant-language bump in the middle layers means
    the model passes through its dominant language even when no translation is asked for.

    Attributes:
        language: The language ``X`` (a data type other than the dominant language).
    """

    name: str = "word_lens"
    language: str = "fr"

    def __post_init__(self) -> None:
        self.source = self.target = self.language
        super().__post_init__()
        self.options["language"] = self.language
