"""Language probabilities per layer (the paper's Fig. 4), streaming.

For a hidden state h read through the logit lens, the probability that the layer "speaks"
language ``lang`` is

    p(lang | h) = sum_v p_lens(v | h) * p(lang | v)

with ``p(lang | v)`` from per-language token statistics under a uniform prior over the chosen
languages (:mod:`hublens.analyses.language_table`: wordfreq frequencies of each token's text,
hublens's default, or token counts of a corpus, the paper's).

Tokens that are no word in any chosen language (special/added tokens, byte-fallback tokens,
punctuation, whitespace, markup, strings no list contains) carry no language mass by default
(``no_language="drop"``); with ``renormalize=True`` the per-state distribution is renormalised
over the mass that does land on word tokens, so the ``p_<lang>`` metrics sum to 1 at every
position; the mass itself is reported as ``p_word`` either way, so nothing is hidden. The paper
gives such tokens 1/K for every language instead (``no_language="uniform"``).

Aggregation: hublens averages the positions of a text (BOS excluded), then texts (the CI is
over texts); the paper weights every position, BOS included, once (``aggregation="per-token"``,
``include_bos=True``; the CI is then over positions, which are not independent). ``method=``
sets all of these (docs/methods.md); the last layer is always the model's own output.

The wordfreq matrix is built once per tokenizer + languages + wordfreq version (about 15 s for
Gemma-3's 262k tokens on one CPU core) and cached on disk under
``hublens.cache.cache_root() / "language-prob"`` as a safetensors file written atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any, ClassVar

import torch
from torch import Tensor

from hublens.analyses.language_table import (
    CORPUS_WORDS,
    cached_token_frequencies,
    check_languages,
    language_given_token,
    token_counts,
    token_frequencies,
    wordfreq_languages,
    wordfreq_token_counts,
)
from hublens.analyses.lens_option import init_lens, lenses_for
from hublens.analyses.presets import apply_preset
from hublens.analysis import Analysis, Query, Row, check_max_items
from hublens.lenses.resolve import LensArg, NamedLens
from hublens.registry import register_analysis
from hublens.stats import KeyedStat, MeanStat, Stat

__all__ = [
    "DEFAULT_LANGUAGES",
    "LanguageProbability",
    "check_languages",
    "language_given_token",
    "token_frequencies",
    "wordfreq_languages",
]

#: The paper's languages (Fig. 4).
DEFAULT_LANGUAGES = ("en", "zh", "fr", "de", "es", "ja")


def _entropy(p: Tensor) -> Tensor:
    """Entropy (nats) of the last axis, with 0 log 0 = 0."""
    return -(p * torch.where(p > 0, p.log(), 0.0)).sum(-1)


@register_analysis("language_probability")
@dataclass
class LanguageProbability(Analysis):
    """Per-layer language probabilities of running text (the paper's Fig. 4).

    Every position of every text of each data type X is read through the logit lens and
    ``p(lang | h)`` averaged (``aggregation``, module docstring). Groups are the data types X
    (the input language).

    Metrics per (layer, group): ``p_<lang>`` for each language, ``lang_entropy`` (entropy of
    ``p(lang | h)`` over the K languages divided by log K, averaged like the probabilities; it
    is always computed on the renormalised distribution) and ``p_word`` (lens mass on tokens
    that are words in at least one language).

    Attributes:
        name: The analysis name.
        options: Recorded settings (filled in by :meth:`setup`).
        method: Whose defaults the options left at None take (``"hublens"``,
            ``"semantic-hub"``, ``"wendler"``: the paper's aggregation with the final norm).
        languages: wordfreq language codes.
        final_norm: Apply the final norm before unembedding at every layer (the last layer is
            the model's output either way); None: the method's.
        aggregation: ``"per-text"`` (mean over a text's positions, then over texts) or
            ``"per-token"`` (every position once); None: the method's.
        include_bos: Read the BOS position too; None: the method's.
        no_language: ``"drop"`` or ``"uniform"`` (1/K) for tokens no language has; None: the
            method's.
        token_table: ``"wordfreq"`` or ``"token-counts"``; None: the method's.
        count_corpus: Texts per language for ``"token-counts"``; None: wordfreq's top
            :data:`~hublens.analyses.language_table.CORPUS_WORDS` words per language.
        renormalize: Divide ``p(lang | h)`` by the mass on tokens of the table so the K
            probabilities sum to 1 (positions whose lens puts no mass there count as uniform).
            False reports the unnormalised ``sum_v p(v | h) p(lang | v)``.
        types: Data types to read (None: every type of the data).
        token_language: An injected ``(d_vocab, K)`` matrix ``p(lang | v)`` (rows summing to 1
            or 0), used instead of ``token_table``; for tests and custom frequency sources.
        use_cache: Read/write the on-disk cache of the wordfreq matrix.
        max_items: Read only the first ``max_items`` items of the data (None: all).
        lens: The lens(es) (:mod:`hublens.lenses.resolve`): a name, folder, Lens object or a
            list; None: ``"logit"`` if ``final_norm`` else ``"logit-raw"``. Every lens reads
            the same states; rows carry the lens name.

    Example:
        >>> from hublens.scan import semantic_hub_scan  # doctest: +SKIP
        >>> semantic_hub_scan(model, "multilingual-sentences",  # doctest: +SKIP
        ...                   analyses=[LanguageProbability()]).table()
    """

    name: str = "language_probability"
    method: str = "hublens"
    languages: Sequence[str] = DEFAULT_LANGUAGES
    final_norm: bool | None = None
    aggregation: str | None = None
    include_bos: bool | None = None
    no_language: str | None = None
    token_table: str | None = None
    count_corpus: Mapping[str, Sequence[str]] | None = None
    renormalize: bool = True
    types: Sequence[str] | None = None
    token_language: Tensor | None = None
    use_cache: bool = True
    max_items: int | None = None
    lens: LensArg = None
    _groups: list[str] = field(default_factory=list, init=False, repr=False)
    _stats: KeyedStat[MeanStat] = field(
        default_factory=lambda: KeyedStat(MeanStat), init=False, repr=False
    )
    _lenses: list[NamedLens] = field(default_factory=list, init=False, repr=False)
    _matrix: Tensor | None = field(default=None, init=False, repr=False)
    _skip: int = field(default=0, init=False, repr=False)
    _layers: list[int] = field(default_factory=list, init=False, repr=False)

    preset: ClassVar[str] = "language_probability"

    def __post_init__(self) -> None:
        explicit_final_norm = self.final_norm
        apply_preset(self, self.preset)
        check_max_items(self.max_items)
        if not isinstance(self.final_norm, bool) or not isinstance(self.include_bos, bool):
            raise ValueError(
                f"final_norm={self.final_norm!r}, include_bos={self.include_bos!r}: pass "
                "True or False."
            )
        init_lens(self, explicit_final_norm)
        for option, allowed in (
            ("aggregation", ("per-text", "per-token")),
            ("no_language", ("drop", "uniform")),
            ("token_table", ("wordfreq", "token-counts")),
        ):
            if getattr(self, option) not in allowed:
                raise ValueError(
                    f"{option}={getattr(self, option)!r}: choose one of "
                    f"{', '.join(map(repr, allowed))}."
                )
        if self.token_language is None:
            self.languages = check_languages(self.languages)
        else:
            if isinstance(self.languages, str) or not self.languages:
                raise ValueError("languages: pass one code per column of token_language.")
            self.languages = tuple(self.languages)
            if len(set(self.languages)) != len(self.languages):
                raise ValueError(f"languages={self.languages} has duplicates.")
            m = self.token_language
            if m.ndim != 2 or m.shape[1] != len(self.languages):
                raise ValueError(
                    f"token_language must be (d_vocab, {len(self.languages)}); got "
                    f"{tuple(m.shape)}."
                )
            if not bool(torch.isfinite(m).all()) or bool((m < 0).any()):
                raise ValueError("token_language must be finite and non-negative.")
        if self.types is not None:
            if isinstance(self.types, str) or not self.types:
                raise ValueError(f"types={self.types!r}: pass a non-empty sequence or None.")
            self.types = tuple(self.types)

    def queries(self, model: Any, data: Any) -> list[Query]:
        """Every text of every chosen data type, all positions.

        Raises:
            ValueError: Empty data, or a requested type the data lacks.
        """
        if data is None or len(data) == 0:
            raise ValueError("data is empty: LanguageProbability needs at least one text.")
        types = tuple(self.types) if self.types is not None else tuple(data.types)
        missing = [t for t in types if t not in data.types]
        if missing:
            raise ValueError(
                f"types {missing} are not columns of data {data.name!r} (it has "
                f"{list(data.types)})."
            )
        self._groups = []
        out = []
        items = data.items if self.max_items is None else data.items[: self.max_items]
        self.options["n_texts_per_type"] = len(items)
        for t in types:
            for item in items:
                out.append(Query(item[t], "all"))
                self._groups.append(t)
        self._stats = KeyedStat(MeanStat)
        for name in lenses_for(self, model):  # fails here, before any forward
            for t in types:
                self._stats.slot((name.name, t))
        return out

    def setup(self, model: Any, layers: Sequence[int]) -> None:
        """Build the lens and the ``p(lang | v)`` matrix (from the cache when possible)."""
        self._skip = 1 if model.prepend_bos and not self.include_bos else 0
        self._lenses = lenses_for(self, model)
        self._layers = [int(layer) for layer in layers]
        d_vocab = int(model.d_vocab)
        n_rows = min(int(getattr(model.tokenizer, "vocab_size", d_vocab)), d_vocab)
        source: dict[str, Any]
        if self.token_language is not None:
            if self.token_language.shape[0] != d_vocab:
                raise ValueError(
                    f"token_language has {self.token_language.shape[0]} rows; the model's "
                    f"d_vocab is {d_vocab}."
                )
            matrix = self.token_language.float()
            word = matrix.sum(-1) > 0
            source = {"source": "injected"}
        else:
            if self.token_table == "wordfreq":
                freqs, info = cached_token_frequencies(
                    model.tokenizer, d_vocab, self.languages, use_cache=self.use_cache
                )
                source = {
                    "source": f"wordfreq {version('wordfreq')} ('best' lists), uniform prior",
                    "mecab_languages": "looked up whole (no segmentation)",
                    **info,
                }
            elif self.count_corpus is not None:
                freqs = token_counts(model.tokenizer, d_vocab, self.count_corpus, self.languages)
                source = {"source": "token counts of count_corpus, uniform prior"}
            else:
                freqs = wordfreq_token_counts(model.tokenizer, d_vocab, self.languages)
                source = {
                    "source": f"token counts of wordfreq {version('wordfreq')}'s top "
                    f"{CORPUS_WORDS:,} words per language, frequency-weighted (replaces the "
                    "paper's C4 counts offline), uniform prior"
                }
            word = freqs.sum(-1) > 0
            matrix = language_given_token(
                freqs,
                no_language=str(self.no_language),
                n_rows=n_rows if self.no_language == "uniform" else None,
            )
        device = self._lenses[0].lens.weight.device
        self._matrix = torch.cat([matrix, word[:, None].float()], -1).to(device)
        self.options.update(
            {
                "languages": list(self.languages),
                "final_norm": self.final_norm,
                "aggregation": self.aggregation,
                "include_bos": self.include_bos,
                "no_language": self.no_language,
                "token_table": self.token_table if self.token_language is None else "injected",
                "renormalize": self.renormalize,
                "types": list(self.types) if self.types is not None else None,
                "positions": "all but BOS" if self._skip else "all",
                "average": "over positions within a text, then over texts (CI over texts)"
                if self.aggregation == "per-text"
                else "every position once (CI over positions)",
                "entropy": "of the renormalised p(lang|h), divided by log K",
                "vocab_with_language_mass": int(word.sum()),
                "d_vocab": int(matrix.shape[0]),
                **source,
            }
        )

    def update(self, indices: Sequence[int], states: Sequence[Tensor]) -> None:
        """Read every state of the batch in one call per lens, then average per text."""
        if not self._lenses or self._matrix is None:
            raise RuntimeError("LanguageProbability.update called before setup().")
        pieces = [s[:, self._skip :, :] for s in states]
        shapes = [p.shape[:2] for p in pieces]
        flat = [p.reshape(-1, p.shape[-1]) for p in pieces]
        if not any(f.shape[0] for f in flat):
            return
        n_layers = len(self._layers)
        if any(n != n_layers for n, _ in shapes):
            raise ValueError(f"update(): states must have {n_layers} layers (one per scanned).")
        # (layer, rows, d): every row tagged with its layer, so the last one is the output
        h = torch.cat([p.transpose(0, 1).reshape(-1, n_layers, p.shape[-1]) for p in pieces])
        for named in self._lenses:  # the same states through every lens
            self._add(named, indices, shapes, h)

    def _add(self, named: NamedLens, indices: Sequence[int], shapes: list[Any], h: Tensor) -> None:
        """One lens's readout of the batch's rows ``h`` (rows, layer, d), added per text."""
        n_layers = len(self._layers)
        assert self._matrix is not None
        full = named.lens.expectation(h.transpose(0, 1), self._matrix, layer=self._layers)
        full = full.transpose(0, 1).reshape(-1, full.shape[-1])  # (rows x layer, K + 1)
        q, word = full[:, :-1], full[:, -1:]
        k = q.shape[-1]
        mass = q.sum(-1, keepdim=True)
        normed = torch.where(mass > 1e-12, q / mass.clamp_min(1e-30), 1.0 / k)
        probs = normed if self.renormalize else q
        entropy = _entropy(normed) / math.log(k) if k > 1 else torch.zeros_like(mass[:, 0])
        metrics = torch.cat([probs, entropy[:, None], word], dim=-1)  # (rows, K + 2)
        start = 0
        for index, (_, n_pos) in zip(indices, shapes, strict=True):
            size = n_layers * n_pos
            if n_pos == 0:
                continue
            block = metrics[start : start + size].reshape(n_pos, n_layers, -1)
            start += size
            stat = self._stats.slot((named.name, self._groups[index]))
            stat.add(block.mean(0)[None] if self.aggregation == "per-text" else block)

    def statistics(self) -> list[Stat]:
        """One :class:`MeanStat` of ``(layer, metric)`` values per (lens, input type)."""
        return [self._stats]

    def metric_names(self) -> list[str]:
        """Metric names in the order of the statistics' last axis."""
        return [f"p_{lang}" for lang in self.languages] + ["lang_entropy", "p_word"]

    def finalize(self, layers: Sequence[int]) -> list[Row]:
        """One row per (layer, metric, input type)."""
        rows = []
        names = self.metric_names()
        for (lens_name, group), stat in self._stats.items():
            if stat.n == 0:
                continue
            mean, low, high = stat.ci()
            for li, layer in enumerate(layers):
                for mi, metric in enumerate(names):
                    rows.append(
                        Row(
                            self.name,
                            int(layer),
                            metric,
                            group,
                            float(mean[li, mi]),
                            float(low[li, mi]),
                            float(high[li, mi]),
                            stat.n,
                            lens_name,
                        )
                    )
        if not rows:
            raise ValueError(f"{self.name}: no text had a position to read (all BOS-only?).")
        return rows
