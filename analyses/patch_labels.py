"""Per-patch vision labels: does each image position's lens token name its own region?

For each item (a text holding one image marker, data from
:func:`hublens.analyses.patch_images.patch_label_data`) the image positions' ``resid_post``
rows are read through the logit lens at every scanned layer. Per image and layer:

* ``top1_region_label``: share of labelled positions whose top-1 lens token names the region
  that position encodes (the top-1 id is one of the region words' ids);
* ``top1_shuffled_label``: the same share with the labels permuted across the image's
  labelled positions, averaged over ``n_permutations`` seeded permutations (the baseline: the
  lens names the image's content but not where it is); ``top1_label_minus_shuffled`` is the
  paired difference;
* ``p_caption_nouns`` / ``p_other_caption_nouns``: the lens probability of the image's own
  caption nouns vs those of an unrelated caption (another item's, sharing no noun), averaged
  over the nouns and over all image positions (the paper's caption-noun comparison);
  ``p_caption_minus_other`` their difference.

Rows average images (group ``"all"`` and each image kind) with 95% t-intervals over images,
one set per lens (``lens=``: every lens reads the same captured states).
Word policy: every label and noun must be ONE token as it reads mid-text (``" red"``); the
top-1 match also accepts the word's other single-token variants (no leading space,
capitalised); probabilities read the ``" word"`` token.
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

METRICS = (
    "top1_region_label",
    "top1_shuffled_label",
    "top1_label_minus_shuffled",
    "p_caption_nouns",
    "p_other_caption_nouns",
    "p_caption_minus_other",
)


def single_token_id(model: Any, word: Any, *, what: str) -> int:
    """The one id of ``" word"``; a clear error for anything else (before any forward)."""
    if not isinstance(word, str) or not word or word != word.strip():
        raise ValueError(f"{what}={word!r}: pass a bare word (a non-empty string, no spaces).")
    ids = model.word_token_ids(word)
    unk = getattr(model.tokenizer, "unk_token_id", None)
    if not ids or (unk is not None and unk in ids):
        raise ValueError(f"{what}={word!r} is not in the model's vocabulary; use another word.")
    if len(ids) != 1:
        pieces = model.tokenizer.convert_ids_to_tokens(ids)
        raise ValueError(
            f"{what}={word!r} tokenizes to {len(ids)} tokens {pieces} as ' {word}'; the lens "
            "reads one token per word (first-token policy would mistake a prefix for the "
            "word): pick a word that is a single token."
        )
    return int(ids[0])


def variant_ids(model: Any, word: str) -> set[int]:
    """Single-token ids of ``word``'s variants (leading space or not, lower or capitalised)."""
    out = set()
    for w in {word, word.capitalize()}:
        for space in (True, False):
            ids = model.word_token_ids(w, leading_space=space)
            if len(ids) == 1:
                out.add(int(ids[0]))
    return out


@register_analysis("patch_labels")
@dataclass
class PatchLabels(Analysis):
    """Lens top-1 at each image position against its region's words, with a shuffled baseline.

    Attributes:
        media: The data type whose texts hold the image marker.
        labels_key: Meta key of each item's per-position labels (a list, one entry per image
            position: the region's words or None).
        nouns_key: Meta key of each item's caption nouns.
        method: Whose lens setting ``final_norm`` defaults to (see :mod:`hublens.methods`).
        final_norm: Final norm before unembedding at every layer; None: the method's.
        n_permutations: Label permutations per image for the shuffled baseline.
        seed: Seed of the permutations and of each item's unrelated caption.
        lens: The lens(es) (:mod:`hublens.lenses.resolve`); None: ``"logit"`` if
            ``final_norm`` else ``"logit-raw"``.

    Example:
        >>> from hublens import semantic_hub_scan
        >>> data = patch_label_data(mm, patch_label_images(24))  # doctest: +SKIP
        >>> result = semantic_hub_scan(mm, data, analyses=[PatchLabels()])  # doctest: +SKIP
    """

    name: str = "patch_labels"
    media: str = "image"
    labels_key: str = "patch_labels"
    nouns_key: str = "nouns"
    method: str = "hublens"
    final_norm: bool | None = None
    n_permutations: int = 200
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    lens: LensArg = None

    preset: ClassVar[str] = "modality"

    def __post_init__(self) -> None:
        explicit_final_norm = self.final_norm
        apply_preset(self, self.preset)
        init_lens(self, explicit_final_norm)
        n = self.n_permutations
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n_permutations={n!r}: pass a positive int (e.g. 200).")

    def queries(self, model: Any, data: Any) -> list[Query]:
        """One query per item (its image positions); every word and size checked here."""
        if not hasattr(model, "adapters"):
            raise ValueError(
                "PatchLabels needs a MultimodalModel (hublens.adapters), whose texts hold image "
                "markers; e.g. hublens.adapters.instances.load_vision_model()."
            )
        if self.media not in data.types:
            raise ValueError(f"media={self.media!r} is not a type of {data.name!r} ({data.types}).")
        labels = self._column(data, self.labels_key, "per-position labels")
        nouns = self._column(data, self.nouns_key, "caption nouns")
        kinds = [str(m.get("kind", "")) for m in data.meta]
        words: set[str] = set()
        queries, self._labels = [], []
        for i, text in enumerate(data.column(self.media)):
            positions = model.tokenize([text]).positions(0)
            item = labels[i]
            if not isinstance(item, list | tuple) or len(item) != len(positions):
                n = len(item) if isinstance(item, list | tuple) else type(item).__name__
                raise ValueError(
                    f"item {i} ({data.ids[i]!r}): {n} labels but its image has "
                    f"{len(positions)} positions; the image is the wrong size for this grid, "
                    "or the labels were built for another grid (PatchGrid(grid=...))."
                )
            cleaned = [None if x is None else [x] if isinstance(x, str) else list(x) for x in item]
            if not any(cleaned):
                raise ValueError(f"item {i} ({data.ids[i]!r}) has no labelled position.")
            for x in cleaned:
                for w in x or ():
                    single_token_id(model, w, what=f"item {i} label")
                    words.add(w)
            for w in nouns[i]:
                single_token_id(model, w, what=f"item {i} noun")
            self._labels.append(cleaned)
            queries.append(Query(text, tuple(positions)))
        self._nouns = [list(n) for n in nouns]
        self._others = self._unrelated(self._nouns, data.ids)
        self._kinds = kinds
        self._groups = ["all", *sorted({k for k in kinds if k})]
        self._words = words
        lenses_for(self, model)  # fails here, before any forward
        self.options.update(
            media=self.media, final_norm=self.final_norm, n_permutations=self.n_permutations,
            seed=self.seed, match="top-1 id is a single-token variant of a region word",
            baseline="labels permuted across each image's labelled positions",
            probability="' word' token, mean over nouns and image positions",
        )  # fmt: skip
        return queries

    @staticmethod
    def _column(data: Any, key: str, what: str) -> list[Any]:
        try:
            return list(data.meta_column(key))
        except (KeyError, ValueError) as exc:
            raise ValueError(
                f"every item of {data.name!r} needs meta[{key!r}] ({what}); build the data with "
                "hublens.analyses.patch_images.patch_label_data."
            ) from exc

    def _unrelated(self, nouns: list[list[str]], ids: Sequence[str]) -> list[list[str]]:
        rng = random.Random(self.seed)
        out = []
        for i, own in enumerate(nouns):
            pool = [j for j, other in enumerate(nouns) if not set(other) & set(own)]
            if not pool:
                raise ValueError(
                    f"item {i} ({ids[i]!r}): every other caption shares a noun with {own}; add "
                    "images with unrelated captions."
                )
            out.append(nouns[rng.choice(pool)])
        return out

    def setup(self, model: Any, layers: Sequence[int]) -> None:
        """The lenses, the word ids and empty statistics."""
        self._lenses = lenses_for(self, model)
        self._layers = [int(x) for x in layers]
        every = self._words | {w for n in self._nouns + self._others for w in n}
        self._variants = {w: variant_ids(model, w) for w in every}
        self._id = {w: single_token_id(model, w, what="word") for w in every}
        self._stats: KeyedStat[MeanStat] = KeyedStat(MeanStat)
        for named in self._lenses:
            for group in self._groups:
                self._stats.slot((named.name, group))

    def _match(self, top: Tensor, words: list[str] | None) -> Tensor:
        if not words:
            return torch.zeros_like(top, dtype=torch.bool)
        ids = sorted(set().union(*(self._variants[w] for w in words)))
        return torch.isin(top, torch.tensor(ids, device=top.device))

    def item_values(self, index: int, state: Tensor, lens: Any) -> Tensor:
        """``(metric, layer)`` values of one image (``state`` is ``(layer, pos, d_model)``)."""
        labels = self._labels[index]
        own, other = self._nouns[index], self._others[index]
        targets = [self._id[w] for w in own + other]
        read = lens.readout(state, token_ids=targets, top_k=1, layer=self._layers)
        top = read.top_ids[..., 0]  # (layer, pos)
        keep = [p for p, lab in enumerate(labels) if lab]
        # match[l, i, j]: the top-1 at labelled position i names the label of position j
        match = torch.stack([self._match(top[:, keep], labels[j]) for j in keep], dim=-1)
        n = len(keep)
        true = match.diagonal(dim1=1, dim2=2).float().mean(-1)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        perms = torch.stack([torch.randperm(n, generator=gen) for _ in range(self.n_permutations)])
        rows = torch.arange(n)[None].expand_as(perms)
        shuffled = match[:, rows, perms.to(match.device)].float().mean(-1).mean(-1)
        assert read.target_logprobs is not None
        probs = read.target_logprobs.exp()  # (layer, pos, targets)
        p_own = probs[..., : len(own)].mean(-1).mean(-1)
        p_other = probs[..., len(own) :].mean(-1).mean(-1)
        values = (true, shuffled, true - shuffled, p_own, p_other, p_own - p_other)
        return torch.stack([v.cpu().double() for v in values])

    def update(self, indices: Sequence[int], states: Sequence[Tensor]) -> None:
        """Score each image at every layer."""
        for index, state in zip(indices, states, strict=True):
            for named in self._lenses:
                values = self.item_values(index, state, named.lens)[None]
                self._stats[(named.name, "all")].add(values)
                if self._kinds[index]:
                    self._stats[(named.name, self._kinds[index])].add(values)

    def statistics(self) -> list[Stat]:
        """One keyed statistic: a :class:`MeanStat` of ``(metric, layer)`` per (lens, group)."""
        return [self._stats]

    def finalize(self, layers: Sequence[int]) -> list[Row]:
        """Rows per group, metric and layer."""
        rows = []
        for lens_name, group in list(self._stats):
            stat = self._stats[(lens_name, group)]
            if stat.n == 0:
                continue
            mean, low, high = stat.ci()
            for m, metric in enumerate(METRICS):
                for k, layer in enumerate(layers):
                    rows.append(
                        Row(self.name, layer, metric, group, float(mean[m, k]),
                            float(low[m, k]), float(high[m, k]), stat.n, lens_name)
                    )  # fmt: skip
        return rows


def patch_label_scan(
    mm: Any,
    *,
    n_images: int = 24,
    seed: int = 3000,
    n_permutations: int = 200,
    method: str = "hublens",
    progress: bool = False,
) -> Any:
    """The per-patch experiment on a vision MultimodalModel: data, analysis, one scan.

    Args:
        mm: The model (e.g. :func:`hublens.adapters.instances.load_vision_model`).
        n_images: Synthetic images (half two-colour, half shapes).
        seed: Seed of the images.
        n_permutations: Permutations per image for the shuffled baseline.
        method: Lens method (final norm choice).
        progress: Show a progress bar.

    Returns:
        The ScanResult.
    """
    from hublens.analyses.patch_images import patch_grid_of, patch_label_data, patch_label_images
    from hublens.scan import semantic_hub_scan

    grid = patch_grid_of(mm)
    if grid is None:
        raise ValueError(
            "mm: the patch layout of this model's image positions is not known (an "
            "EfficientNet-Lite0 encoder, or one with a `patch_grid` attribute, and a projector "
            "with window 1); build labels with PatchGrid yourself and run PatchLabels."
        )
    images = patch_label_images(n_images, seed=seed)
    data = patch_label_data(mm, images, grid=grid)
    analysis = PatchLabels(n_permutations=n_permutations, method=method)
    return semantic_hub_scan(mm, data, analyses=[analysis], progress=progress)
