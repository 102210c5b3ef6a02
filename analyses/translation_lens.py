"""Translation and repetition prompts read through the logit lens (the paper's experiment 1)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

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
    (the next items in data order, cyclically, skipping any that share the item's source or
    target word) and ends right after the target language's opening quote::

        Français: "chien" - 中文: "狗"
        Français: "chat" - 中文: "猫"
        Français: "fleur" - 中文: "

    At the last position of every layer it reads the target-language word (花) and the
    dominant-language word (flower), both without a leading space (they follow the quote).

    Metrics (group ``"{source}->{target}"``): ``logp_target``, ``logp_dominant``,
    ``p_target``, ``p_dominant`` and ``frac_dominant_gt_target`` (fraction of items whose
    dominant word is more probable than the target word). Expected (the paper): the dominant
    word wins in middle layers, the target word in the last layers.

    Attributes:
        source: Language of the word to translate (a data type, e.g. ``"fr"``).
        target: Language to translate into (a data type, e.g. ``"zh"``).
        dominant: The "latent" language (a data type); None: ``model.dominant_language``.
        few_shot: Number of demonstration pairs (0 or more).
        language_names: Overrides of :data:`LANGUAGE_NAMES` for the prompt.
    """

    name: str = "translation_lens"
    source: str = "fr"
    target: str = "zh"
    dominant: str | None = None
    few_shot: int = 2
    language_names: dict[str, str] = field(default_factory=dict)

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
        self.options.update(source=self.source, target=self.target, few_shot=self.few_shot)

    def _builtin_hint(self) -> str:
        return "multilingual-words"

    def reads_other_items(self) -> bool:
        """Whether a prompt holds other items (few-shot demonstrations): no data sharding."""
        return self.few_shot > 0

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
        if self.few_shot > len(data) - 1:
            raise ValueError(
                f"few_shot={self.few_shot} needs {self.few_shot + 1} items but data {data.name!r} "
                f"has {len(data)}; lower few_shot or pass more items."
            )
        src_name = self._language_name(self.source, "source")
        tgt_name = self._language_name(self.target, "target")
        sources, targets, dominants = (
            data.column(self.source),
            data.column(self.target),
            data.column(dominant),
        )
        requests: list[Request | str] = []
        for i in range(n_items):
            demos: list[str] = []
            for step in range(1, len(data)):
                if len(demos) == self.few_shot:
                    break
                j = (i + step) % len(data)
                if {sources[j], targets[j]} & {sources[i], targets[i]}:
                    continue  # would give the answer away
                demos.append(f'{src_name}: "{sources[j]}" - {tgt_name}: "{targets[j]}"')
            if len(demos) < self.few_shot:
                requests.append("too_few_demonstrations")
                continue
            prompt = "\n".join([*demos, f'{src_name}: "{sources[i]}" - {tgt_name}: "'])
            requests.append(
                Request(
                    text=prompt,
                    targets=(Target(targets[i], False), Target(dominants[i], False)),
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
