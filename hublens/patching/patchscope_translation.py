"""The patchscope of translation prompts: which language the last-token state "says", per layer.

Each source prompt translates item X from language A into B (few-shot, the Wendler format of
:mod:`hublens.patching.prompts`, ending after the answer's opening quote). Its last-token state
at every layer is decoded by :func:`hublens.patching.patchscope.patchscope`, reading X's word in
B (the answer), in A (the input) and in English (the latent language of the semantic hub
hypothesis). A hub shows as English rising in the middle layers before B takes over.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from hublens.data import ParallelData
from hublens.patching.patchscope import IDENTITY_PROMPT, patchscope
from hublens.patching.prompts import check_languages, demo_items, language_name, translation_prompt
from hublens.results import ScanResult

__all__ = ["TranslationPatchscope"]


@dataclass(kw_only=True)
class TranslationPatchscope:
    """Decode translation prompts' last-token states with the patchscope, per layer.

    Attributes:
        source: A, the prompts' input language.
        target: B, the prompts' output language.
        latent: The extra reading (the hub's language; None: none). Readings equal to A or B
            are read once.
        layers: Source layers (None: all).
        n_items: Items (a seeded sample of the table; None: every item).
        few_shot: Demonstration pairs per prompt.
        identity: The identity prompt (holding ``placeholder`` once).
        placeholder: The text whose token the state replaces.
        into: Patch every state into this one layer (None: the same layer).
        batch_size: Prompts per forward.
        seed: Seed of the item sample.
        language_names: Overrides of the prompt's language names.

    Example:
        >>> result = TranslationPatchscope(source="fr", target="zh").run(model)  # doctest: +SKIP
        >>> result.save("report/patchscope")  # doctest: +SKIP
    """

    source: str = "fr"
    target: str = "zh"
    latent: str | None = "en"
    layers: Any = None
    n_items: int | None = 24
    few_shot: int = 2
    identity: str = IDENTITY_PROMPT
    placeholder: str = "?"
    into: int | None = None
    batch_size: int = 16
    seed: int = 0
    language_names: dict[str, str] = field(default_factory=dict)

    def prompts(self, data: ParallelData) -> tuple[list[int], list[str], dict[str, list[str]]]:
        """The sampled items, their prompts and the readings (language -> words).

        Raises:
            ValueError: A language absent from the table or without a name, A equal to B, too
                few items.
        """
        a, b = self.source, self.target
        langs = {"source": a, "target": b}
        if self.latent is not None:
            langs["latent"] = self.latent
        check_languages(data, langs)
        if a == b:
            raise ValueError(f"source and target are both {a!r}: a prompt translates between two.")
        if self.n_items is not None and (
            isinstance(self.n_items, bool) or not isinstance(self.n_items, int) or self.n_items < 1
        ):
            raise ValueError(f"n_items={self.n_items!r}: pass an int >= 1, or None for all.")
        names = {x: language_name(x, self.language_names, arg) for arg, x in langs.items()}
        n = len(data) if self.n_items is None else min(self.n_items, len(data))
        items = sorted(random.Random(self.seed).sample(range(len(data)), n))
        order = [b, a] + [x for x in [self.latent] if x is not None and x not in (a, b)]
        prompts = [
            translation_prompt(data, x, demo_items(data, x, [x], self.few_shot, order), a, b, names)
            for x in items
        ]
        readings = {lang: [data.column(lang)[x] for x in items] for lang in order}
        return items, prompts, readings

    def run(self, model: Any, data: ParallelData | None = None) -> ScanResult:
        """Run the readout; every input is checked before the first forward.

        Args:
            model: A HubModel.
            data: The word table (default: the built-in ``multilingual-words``).

        Returns:
            The :func:`~hublens.patching.patchscope.patchscope` result, group ``"A->B"``,
            readings named by language code (``p_zh``, ``top1_en``, ...).
        """
        data = ParallelData.load("multilingual-words") if data is None else data
        items, prompts, readings = self.prompts(data)
        result = patchscope(
            model,
            prompts,
            targets=readings,
            layers=self.layers,
            identity=self.identity,
            placeholder=self.placeholder,
            into=self.into,
            group=f"{self.source}->{self.target}",
            batch_size=self.batch_size,
        )
        extra = {
            "source": self.source,
            "target": self.target,
            "latent": self.latent,
            "few_shot": self.few_shot,
            "seed": self.seed,
            "items": [data[i].id for i in items],
        }
        for options in result.options.values():
            options.update(extra)
        result.provenance["data"] = data.provenance()
        return result
