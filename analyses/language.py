"""Language probabilities per layer (the paper's Fig. 4), streaming.

For a hidden state h read through the logit lens, the probability that the layer "speaks"
language ``lang`` is

    p(lang | h) = sum_v p_lens(v | h) * p(lang | v)

with ``p(lang | v)`` from per-language unigram frequencies under a uniform prior over the
chosen languages: ``p(lang | v) = f_lang(v) / sum_l f_l(v)``, where ``f_lang(v)`` is wordfreq's
frequency of the token's text in ``lang`` (the authors used C4 counts over 101 languages; offline,
wordfreq's per-language lists serve).

Tokens that are no word in any chosen language (special/added tokens, byte-fallback tokens,
punctuation, whitespace, markup, strings no list contains) have ``f_l(v) = 0`` for every l and
carry no language mass. By default (``renormalize=True``) the per-state distribution is
renormalised over the mass that does land on word tokens, so the ``p_<lang>`` metrics sum to 1
at every position; the mass itself is reported as ``p_word`` either way, so nothing is hidden.

The ``(d_vocab, K)`` matrix is built once per tokenizer + languages + wordfreq version
(about 15 s for Gemma-3's 262k tokens on one CPU core) and cached on disk under
``hublens.cache.cache_root() / "language-prob"`` as a safetensors file written atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from typing import Any

import torch
from torch import Tensor

from hublens.analyses.vocab import token_texts, tokenizer_fingerprint
from hublens.analysis import Analysis, Query, Row, check_max_items
from hublens.atomic import atomic_path
from hublens.cache import cache_root
from hublens.hooks.lens import LogitLens
from hublens.registry import register_analysis
from hublens.stats import KeyedStat, MeanStat, Stat

logger = logging.getLogger(__name__)

#: The paper's languages (Fig. 4).
DEFAULT_LANGUAGES = ("en", "zh", "fr", "de", "es", "ja")
#: Bump when the recipe of the matrix changes (invalidates cached files).
_RECIPE = 1
_CACHE_DIR = "language-prob"


def wordfreq_languages() -> list[str]:
    """Language codes wordfreq has a frequency list for."""
    from wordfreq import available_languages

    return sorted(available_languages(wordlist="best"))


def check_languages(languages: Sequence[str]) -> tuple[str, ...]:
    """Validate language codes against wordfreq.

    Args:
        languages: ISO codes, e.g. ``("en", "zh")``.

    Returns:
        The codes as a tuple.

    Raises:
        ValueError: Empty, duplicated, or a code wordfreq has no list for.
    """
    if isinstance(languages, str):
        raise ValueError(f"languages={languages!r}: pass a sequence of codes, e.g. ('en', 'zh').")
    langs = tuple(languages)
    if not langs:
        raise ValueError("languages=(): pass at least one language code, e.g. ('en', 'zh').")
    if len(set(langs)) != len(langs):
        raise ValueError(f"languages={langs} has duplicates; list each code once.")
    known = wordfreq_languages()
    unknown = [lang for lang in langs if lang not in known]
    if unknown:
        raise ValueError(
            f"Unknown language code(s) {unknown} for wordfreq; choose from {', '.join(known)}."
        )
    return langs


def _frequency_function(lang: str) -> Any:
    """``text -> frequency`` for one language.

    Languages wordfreq segments with MeCab (ja, ko) are looked up directly (NFKC, casefolded,
    whole token text, no segmentation), since MeCab is not a hublens dependency; every other
    language uses ``wordfreq.word_frequency`` unchanged.
    """
    from wordfreq import get_frequency_dict, word_frequency
    from wordfreq.language_info import get_language_info

    if get_language_info(lang)["tokenizer"] == "mecab":
        freqs = get_frequency_dict(lang)

        def lookup(text: str) -> float:
            return float(freqs.get(unicodedata.normalize("NFKC", text).casefold(), 0.0))

        return lookup
    return lambda text: float(word_frequency(text, lang))


def token_frequencies(tokenizer: Any, d_vocab: int, languages: Sequence[str]) -> Tensor:
    """Wordfreq frequency of every vocabulary entry's text in every language (no cache).

    Args:
        tokenizer: A Hugging Face tokenizer.
        d_vocab: Number of unembedding rows.
        languages: Validated language codes.

    Returns:
        ``(d_vocab, K)`` float64; rows of non-word tokens (see
        :func:`hublens.analyses.vocab.token_texts`) are 0.
    """
    texts = token_texts(tokenizer, d_vocab)
    unique = sorted({t for t in texts if t is not None})
    index = {t: i for i, t in enumerate(unique)}
    table = torch.zeros(len(unique), len(languages), dtype=torch.float64)
    for k, lang in enumerate(languages):
        freq = _frequency_function(lang)
        table[:, k] = torch.tensor([freq(t) for t in unique], dtype=torch.float64)
    out = torch.zeros(d_vocab, len(languages), dtype=torch.float64)
    rows = [i for i, t in enumerate(texts) if t is not None]
    if rows:
        out[rows] = table[[index[texts[i]] for i in rows]]  # type: ignore[index]
    return out


def language_given_token(frequencies: Tensor) -> Tensor:
    """``p(lang | v) = f_lang(v) / sum_l f_l(v)`` (uniform prior), 0 rows where all f are 0.

    Args:
        frequencies: ``(d_vocab, K)`` non-negative frequencies.

    Returns:
        ``(d_vocab, K)`` float32.
    """
    total = frequencies.sum(-1, keepdim=True)
    return torch.where(total > 0, frequencies / total.clamp_min(1e-300), 0.0).float()


def _cache_key(fingerprint: str, languages: Sequence[str]) -> str:
    blob = json.dumps(
        {
            "tokenizer": fingerprint,
            "languages": list(languages),
            "wordfreq": version("wordfreq"),
            "recipe": _RECIPE,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def cached_token_frequencies(
    tokenizer: Any, d_vocab: int, languages: Sequence[str], *, use_cache: bool = True
) -> tuple[Tensor, dict[str, Any]]:
    """:func:`token_frequencies`, cached on disk.

    The file is ``cache_root()/language-prob/<key>.safetensors`` with ``key`` a hash of the
    tokenizer fingerprint, the languages, wordfreq's version and the recipe version. It is
    written to a temporary file and renamed into place; an unreadable or mismatched file is
    rebuilt.

    Args:
        tokenizer: A Hugging Face tokenizer.
        d_vocab: Number of unembedding rows.
        languages: Validated language codes.
        use_cache: Read and write the cache (False: always rebuild, write nothing).

    Returns:
        (frequencies ``(d_vocab, K)`` float64, info for the options: key, path, whether it came
        from the cache).
    """
    from safetensors.torch import load_file, save_file

    langs = list(languages)
    key = _cache_key(tokenizer_fingerprint(tokenizer, d_vocab), langs)
    path = cache_root() / _CACHE_DIR / f"{key}.safetensors"
    info: dict[str, Any] = {"cache_key": key, "cache_path": str(path), "from_cache": False}
    if use_cache and path.is_file():
        try:
            freqs = load_file(str(path))["frequencies"]
            if tuple(freqs.shape) == (d_vocab, len(langs)) and bool(torch.isfinite(freqs).all()):
                info["from_cache"] = True
                return freqs, info
            logger.warning("Language-frequency cache %s has the wrong shape; rebuilding.", path)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is rebuilt
            logger.warning("Language-frequency cache %s is unreadable (%s); rebuilding.", path, exc)
    freqs = token_frequencies(tokenizer, d_vocab, langs)
    if use_cache:
        meta = {"languages": ",".join(langs), "wordfreq": version("wordfreq")}
        with atomic_path(path) as tmp:
            save_file({"frequencies": freqs.contiguous()}, str(tmp), metadata=meta)
    return freqs, info


def _entropy(p: Tensor) -> Tensor:
    """Entropy (nats) of the last axis, with 0 log 0 = 0."""
    return -(p * torch.where(p > 0, p.log(), 0.0)).sum(-1)


@register_analysis("language_probability")
@dataclass
class LanguageProbability(Analysis):
    """Per-layer language probabilities of running text (the paper's Fig. 4).

    Every position of every text (BOS excluded) of each data type X is read through the logit
    lens; ``p(lang | h)`` is averaged over the positions of a text, then over texts (the CI is
    over texts). Groups are the data types X (the input language).

    Metrics per (layer, group): ``p_<lang>`` for each language, ``lang_entropy`` (entropy of
    ``p(lang | h)`` over the K languages divided by log K, averaged like the probabilities; it
    is always computed on the renormalised distribution) and ``p_word`` (lens mass on tokens
    that are words in at least one language).

    Attributes:
        name: The analysis name.
        options: Recorded settings (filled in by :meth:`setup`).
        languages: wordfreq language codes.
        final_norm: Apply the final norm before unembedding.
        renormalize: Divide ``p(lang | h)`` by ``p_word`` so the K probabilities sum to 1
            (positions whose lens puts no mass on word tokens count as uniform). False reports
            the unnormalised ``sum_v p(v | h) p(lang | v)``.
        types: Data types to read (None: every type of the data).
        token_language: An injected ``(d_vocab, K)`` matrix ``p(lang | v)`` (rows summing to 1
            or 0), used instead of wordfreq; for tests and custom frequency sources.
        use_cache: Read/write the on-disk cache of the wordfreq matrix.
        max_items: Read only the first ``max_items`` items of the data (None: all).

    Example:
        >>> from hublens.scan import semantic_hub_scan  # doctest: +SKIP
        >>> semantic_hub_scan(model, "multilingual-sentences",  # doctest: +SKIP
        ...                   analyses=[LanguageProbability()]).table()
    """

    name: str = "language_probability"
    languages: Sequence[str] = DEFAULT_LANGUAGES
    final_norm: bool = True
    renormalize: bool = True
    types: Sequence[str] | None = None
    token_language: Tensor | None = None
    use_cache: bool = True
    max_items: int | None = None
    _groups: list[str] = field(default_factory=list, init=False, repr=False)
    _stats: KeyedStat[MeanStat] = field(
        default_factory=lambda: KeyedStat(MeanStat), init=False, repr=False
    )
    _lens: LogitLens | None = field(default=None, init=False, repr=False)
    _matrix: Tensor | None = field(default=None, init=False, repr=False)
    _skip: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        check_max_items(self.max_items)
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
        for t in types:
            self._stats.slot(t)
        return out

    def setup(self, model: Any, layers: Sequence[int]) -> None:
        """Build the lens and the ``p(lang | v)`` matrix (from the cache when possible)."""
        self._skip = 1 if model.prepend_bos else 0
        self._lens = LogitLens.from_model(model, final_norm=self.final_norm)
        source: dict[str, Any]
        if self.token_language is not None:
            if self.token_language.shape[0] != model.d_vocab:
                raise ValueError(
                    f"token_language has {self.token_language.shape[0]} rows; the model's "
                    f"d_vocab is {model.d_vocab}."
                )
            matrix = self.token_language.float()
            source = {"source": "injected"}
        else:
            freqs, info = cached_token_frequencies(
                model.tokenizer, model.d_vocab, self.languages, use_cache=self.use_cache
            )
            matrix = language_given_token(freqs)
            source = {
                "source": f"wordfreq {version('wordfreq')} ('best' lists), uniform prior",
                "mecab_languages": "looked up whole (no segmentation)",
                **info,
            }
        self._matrix = matrix.to(self._lens.weight.device)
        covered = int((matrix.sum(-1) > 0).sum())
        self.options.update(
            {
                "languages": list(self.languages),
                "final_norm": self.final_norm,
                "renormalize": self.renormalize,
                "types": list(self.types) if self.types is not None else None,
                "positions": "all but BOS" if self._skip else "all",
                "average": "over positions within a text, then over texts (CI over texts)",
                "entropy": "of the renormalised p(lang|h), divided by log K",
                "vocab_with_language_mass": covered,
                "d_vocab": int(matrix.shape[0]),
                **source,
            }
        )

    def update(self, indices: Sequence[int], states: Sequence[Tensor]) -> None:
        """Read every state of the batch in one lens call, then average per text."""
        if self._lens is None or self._matrix is None:
            raise RuntimeError("LanguageProbability.update called before setup().")
        pieces = [s[:, self._skip :, :] for s in states]
        shapes = [p.shape[:2] for p in pieces]
        flat = [p.reshape(-1, p.shape[-1]) for p in pieces]
        if not any(f.shape[0] for f in flat):
            return
        q = self._lens.expectation(torch.cat(flat), self._matrix)  # (rows, K)
        k = q.shape[-1]
        mass = q.sum(-1, keepdim=True)
        normed = torch.where(mass > 1e-12, q / mass.clamp_min(1e-30), 1.0 / k)
        probs = normed if self.renormalize else q
        entropy = _entropy(normed) / math.log(k) if k > 1 else torch.zeros_like(mass[:, 0])
        metrics = torch.cat([probs, entropy[:, None], mass], dim=-1)  # (rows, K + 2)
        start = 0
        for index, (n_layers, n_pos) in zip(indices, shapes, strict=True):
            size = n_layers * n_pos
            if n_pos == 0:
                continue
            block = metrics[start : start + size].reshape(n_layers, n_pos, -1)
            start += size
            self._stats[self._groups[index]].add(block.mean(1)[None])

    def statistics(self) -> list[Stat]:
        """One :class:`MeanStat` of ``(layer, metric)`` values per input type."""
        return [self._stats]

    def metric_names(self) -> list[str]:
        """Metric names in the order of the statistics' last axis."""
        return [f"p_{lang}" for lang in self.languages] + ["lang_entropy", "p_word"]

    def finalize(self, layers: Sequence[int]) -> list[Row]:
        """One row per (layer, metric, input type)."""
        rows = []
        names = self.metric_names()
        for group, stat in self._stats.items():
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
                        )
                    )
        if not rows:
            raise ValueError(f"{self.name}: no text had a position to read (all BOS-only?).")
        return rows
