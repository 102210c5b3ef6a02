"""Logit lens at media positions (images, audio) of a MultimodalModel.

For each item the media positions of one data type (a text holding one ``<image:KEY>`` or
``<audio:KEY>`` marker) are read through the logit lens at every scanned layer. Per item and
layer it records the fraction of media positions whose top-1 lens token is the item's label
word (e.g. the colour of a solid image; the paper's "% of (image token, layer) pairs"), the same
fraction for a fixed baseline word (the paper's "white"), and the lens probability of the
label word and of a random other label (the paper's audio comparison), averaged over the
media positions. Rows average items with 95% CIs.

A word counts as the top-1 token when the top-1 id is the first token of any of its variants
(" red", "red", " Red", "Red"); the probabilities use the first token of " word".
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from hublens.analyses.lens_option import init_lens, lenses_for
from hublens.analyses.presets import apply_preset
from hublens.analysis import Analysis, Query, Row
from hublens.lenses.resolve import LensArg
from hublens.registry import register_analysis
from hublens.stats import KeyedStat, MeanStat, Stat

_METRICS = ("top1_label", "top1_baseline", "p_label", "p_other_label", "p_label_minus_other")


def word_variant_ids(model: Any, word: str) -> set[int]:
    """First-token ids of a word's variants (with/without leading space, capitalised)."""
    ids = set()
    for w in {word, word.capitalize()}:
        for space in (True, False):
            tokens = model.word_token_ids(w, leading_space=space)
            if tokens:
                ids.add(int(tokens[0]))
    return ids


@register_analysis("modality_lens")
@dataclass
class ModalityLens(Analysis):
    """Logit lens at the media positions of one data type, against the item's label.

    Attributes:
        media: The data type whose texts hold the media marker (e.g. ``"image"``).
        label_key: Meta key of each item's label word (e.g. ``"label"``: ``"red"``).
        baseline_word: A fixed comparison word (the paper uses ``"white"`` for colours), or
            None.
        method: Whose lens setting ``final_norm`` defaults to (``"semantic-hub"``: no norm but
            at the last layer; ``"hublens"``, ``"wendler"``: the final norm at every layer).
        final_norm: Apply the final norm before unembedding at every layer (the last layer is
            the model's output either way); None: the method's.
        seed: Seed of the random other label per item.
        lens: The lens(es) (:mod:`hublens.lenses.resolve`); None: ``"logit"`` if
            ``final_norm`` else ``"logit-raw"``. Every lens reads the same states.

    Example:
        >>> from hublens import semantic_hub_scan
        >>> lens = ModalityLens(media="image", baseline_word="white")
        >>> result = semantic_hub_scan(mm, data, analyses=[lens])  # doctest: +SKIP
    """

    name: str = "modality_lens"
    media: str = "image"
    label_key: str = "label"
    baseline_word: str | None = None
    method: str = "hublens"
    final_norm: bool | None = None
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    lens: LensArg = None

    preset: ClassVar[str] = "modality"

    def __post_init__(self) -> None:
        explicit_final_norm = self.final_norm
        apply_preset(self, self.preset)
        init_lens(self, explicit_final_norm)

    def queries(self, model: Any, data: Any) -> list[Query]:
        """One query per item: its media positions."""
        if self.media not in data.types:
            raise ValueError(
                f"media={self.media!r} is not a type of data {data.name!r} ({data.types})."
            )
        if not hasattr(model, "adapters"):
            raise ValueError(
                "ModalityLens needs a MultimodalModel (hublens.adapters), whose texts hold "
                "media markers."
            )
        try:
            labels = [str(x) for x in data.meta_column(self.label_key)]
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"label_key={self.label_key!r}: every item of {data.name!r} needs "
                f"meta[{self.label_key!r}] (its label word)."
            ) from exc
        distinct = sorted(set(labels))
        if len(distinct) < 2:
            raise ValueError("ModalityLens needs at least two different labels.")
        rng = random.Random(self.seed)
        self._labels = labels
        self._others = [rng.choice([x for x in distinct if x != lab]) for lab in labels]
        queries = []
        for i, text in enumerate(data.column(self.media)):
            positions = model.tokenize([text]).positions(0)
            if not positions:
                raise ValueError(
                    f"item {i} of {data.name!r}: {self.media} text {text!r} holds no media marker."
                )
            queries.append(Query(text, tuple(positions)))
        lenses_for(self, model)  # fails here, before any forward
        self.options.update(
            media=self.media,
            label_key=self.label_key,
            baseline_word=self.baseline_word,
            final_norm=self.final_norm,
            seed=self.seed,
            match="top-1 id is the first token of the word with/without space, lower/capitalised",
            probability="first token of ' word', averaged over media positions",
        )
        return queries

    def setup(self, model: Any, layers: Sequence[int]) -> None:
        """Build the lenses and the word ids."""
        self._lenses = lenses_for(self, model)
        self._layers = [int(layer) for layer in layers]
        words = set(self._labels) | set(self._others)
        self._variants = {w: word_variant_ids(model, w) for w in words}
        self._first = {w: int(model.word_token_ids(w)[0]) for w in words}
        self._baseline = (
            word_variant_ids(model, self.baseline_word) if self.baseline_word else set()
        )
        self._stats: KeyedStat[MeanStat] = KeyedStat(MeanStat)
        for named in self._lenses:
            for m in _METRICS:
                self._stats.slot((named.name, m))

    def update(self, indices: Sequence[int], states: Sequence[Tensor]) -> None:
        """Read each item's media positions at every layer, through every lens."""
        for index, state in zip(indices, states, strict=True):
            for named in self._lenses:
                self._add(named.name, named.lens, index, state)

    def _add(self, lens_name: str, lens: Any, index: int, state: Tensor) -> None:
        """One lens's readout of one item's media positions."""
        label, other = self._labels[index], self._others[index]
        readout = lens.readout(
            state, token_ids=[self._first[label], self._first[other]], top_k=1,
            layer=self._layers,
        )  # fmt: skip
        top = readout.top_ids[..., 0]  # (layer, pos)
        assert readout.target_logprobs is not None
        probs = readout.target_logprobs.exp()  # (layer, pos, 2)
        hit = torch.isin(top, torch.tensor(sorted(self._variants[label]), device=top.device))
        base = (
            torch.isin(top, torch.tensor(sorted(self._baseline), device=top.device))
            if self._baseline
            else torch.zeros_like(hit)
        )
        values = {
            "top1_label": hit.float().mean(-1),
            "top1_baseline": base.float().mean(-1),
            "p_label": probs[..., 0].mean(-1),
            "p_other_label": probs[..., 1].mean(-1),
            "p_label_minus_other": (probs[..., 0] - probs[..., 1]).mean(-1),
        }
        for metric, value in values.items():
            self._stats[(lens_name, metric)].add(value[None])

    def statistics(self) -> list[Stat]:
        """One keyed statistic: a :class:`MeanStat` per (lens, metric), in a fixed order."""
        return [self._stats]

    def finalize(self, layers: Sequence[int]) -> list[Row]:
        """Rows per layer and metric (fractions in [0, 1], probabilities)."""
        rows = []
        for lens_name, metric in list(self._stats):
            if metric == "top1_baseline" and not self._baseline:
                continue
            stat = self._stats[(lens_name, metric)]
            mean, low, high = stat.ci()
            for k, layer in enumerate(layers):
                rows.append(
                    Row(
                        self.name,
                        layer,
                        metric,
                        self.media,
                        float(mean[k]),
                        float(low[k]),
                        float(high[k]),
                        stat.n,
                        lens_name,
                    )
                )
        return rows
