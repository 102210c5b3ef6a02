"""Logit-lens probes of the semantic hub paper's experiments 1-4, as streaming analyses.

Every probe builds one prompt per item (or per name occurrence), reads the residual stream at
the prompt's last token at every scanned layer through the logit lens, and compares the
log-probabilities of a few *target words*: the target-language word against the dominant
language's (English) word, a numeral against its number word, ``" and"`` against ``" or"``,
a parameter name against the actual argument, the correct semantic role against the others.

Word-to-token policy (shared by all probes, recorded in ``options["token_policy"]``):

* ``"first"`` (the paper's): the word's first token, with the leading space made explicit per
  probe (a word right after an opening quote, a numeral after ``+``, or an argument right
  after ``(`` is read without a space; a number word, a role word, or an argument after
  ``", "`` with one), through :meth:`HubModel.word_token_ids`.
* ``"prefix_sum"`` (Wendler et al., 2024): the summed probability of every vocabulary id whose
  decoded text, stripped of one leading space (the tokenizer's space marker), is a non-empty
  prefix of the word; the id sets are computed once per word. The log of the sum is reported.

Items whose compared targets resolve to the same token ids (policy ``"first"``: the same first
token, e.g. French "radio" and English "radio"; ``"prefix_sum"``: the same id set) make the
comparison meaningless: they are skipped and counted in ``options["skipped_items"]`` (with the
reasons in ``options["skip_reasons"]``), never silently. A target word that yields no token at
all raises a ValueError.

The engine (:func:`hublens.scan.semantic_hub_scan`) calls :meth:`~LensProbe.queries`, then
:meth:`~LensProbe.setup`, then :meth:`~LensProbe.update` per batch, then
:meth:`~LensProbe.finalize`. Each update reads all layers x queries of the batch in ONE
:meth:`LogitLens.readout` call. Statistics are streaming (:class:`MeanStat`, per group, over a
``(metric, layer)`` vector): nothing per item is kept.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from hublens.analyses.base import Analysis, Query, Row, check_max_items
from hublens.analyses.stats import MeanStat
from hublens.data import ParallelData
from hublens.hooks import LogitLens

__all__ = [
    "LANGUAGE_NAMES",
    "TOKEN_POLICIES",
    "ArithmeticProbe",
    "CodeArgsProbe",
    "CodeListProbe",
    "LensProbe",
    "SemanticsRoleProbe",
    "TranslationLens",
    "WordLens",
    "prefix_token_ids",
    "target_token_ids",
]

#: The word-to-token policies.
TOKEN_POLICIES: tuple[str, ...] = ("first", "prefix_sum")

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


# ---------------------------------------------------------------------------- token policies

# tokenizer -> (vocabulary size indexed, {decoded text stripped of one leading space: ids})
_PREFIX_INDEX: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, list[int]]]] = (
    weakref.WeakKeyDictionary()
)


def _prefix_index(model: Any) -> dict[str, list[int]]:
    """Decoded vocabulary, grouped by text without its leading space (cached per tokenizer)."""
    tokenizer = model.tokenizer
    size = min(len(tokenizer), int(model.d_vocab))
    cached = _PREFIX_INDEX.get(tokenizer)
    if cached is not None and cached[0] == size:
        return cached[1]
    special = set(tokenizer.all_special_ids)
    texts = tokenizer.batch_decode([[i] for i in range(size)])
    index: dict[str, list[int]] = {}
    for token_id, text in enumerate(texts):
        if token_id in special:
            continue
        stripped = text[1:] if text.startswith(" ") else text
        if stripped:
            index.setdefault(stripped, []).append(token_id)
    _PREFIX_INDEX[tokenizer] = (size, index)
    return index


def prefix_token_ids(model: Any, word: str) -> tuple[int, ...]:
    """Ids of every vocabulary entry whose decoded text is a non-empty prefix of ``word``.

    The decoded text of each id is stripped of one leading space (the tokenizer's space marker)
    first, so ``"▁flo"`` and ``"flo"`` both count for ``"flower"`` (Wendler et al., 2024).
    Special tokens never count.

    Args:
        model: A HubModel (its tokenizer and ``d_vocab`` are used).
        word: The word, non-empty.

    Returns:
        The sorted ids (possibly empty).

    Raises:
        ValueError: ``word`` is empty.
    """
    if not word:
        raise ValueError("word='': pass a non-empty word.")
    index = _prefix_index(model)
    ids: set[int] = set()
    for stop in range(1, len(word) + 1):
        ids.update(index.get(word[:stop], ()))
    return tuple(sorted(ids))


def target_token_ids(
    model: Any, word: str, *, leading_space: bool, policy: str = "first"
) -> tuple[int, ...]:
    """The vocabulary ids whose probability stands for ``word`` under a token policy.

    Args:
        model: A HubModel.
        word: The word, without surrounding whitespace.
        leading_space: Whether the word follows a space where it is read (policy ``"first"``
            only: ``"prefix_sum"`` strips the space marker and so covers both forms).
        policy: ``"first"`` (the first token) or ``"prefix_sum"`` (every prefix token).

    Returns:
        One id for ``"first"``, the prefix ids for ``"prefix_sum"``.

    Raises:
        ValueError: Unknown policy, or the word yields no token.
    """
    _check_policy(policy)
    if policy == "first":
        ids = tuple(model.word_token_ids(word, leading_space=leading_space)[:1])
    else:
        if not word or word != word.strip():
            raise ValueError(f"word={word!r}: pass the bare word without surrounding whitespace.")
        ids = prefix_token_ids(model, word)
    if not ids:
        raise ValueError(
            f"word={word!r} yields no token under token_policy={policy!r}; fix or drop the word "
            "(or try the other policy)."
        )
    return ids


def _check_policy(policy: str) -> None:
    if policy not in TOKEN_POLICIES:
        raise ValueError(
            f"token_policy={policy!r}: choose one of {', '.join(map(repr, TOKEN_POLICIES))}."
        )


# ---------------------------------------------------------------------------- the base probe


@dataclass(frozen=True)
class _Target:
    """A word read at a query's last position, and whether a space precedes it there."""

    word: str
    leading_space: bool


@dataclass(frozen=True)
class _Request:
    """What a subclass asks for one query: the prompt, its targets, groups, which must differ."""

    text: str
    targets: tuple[_Target, ...]
    groups: tuple[str, ...]
    distinct: tuple[int, ...] | None = None  # target slots compared (None: all)


@dataclass(frozen=True)
class _Plan:
    """A resolved query: the prompt, one id set per target slot, its groups."""

    text: str
    targets: tuple[tuple[int, ...], ...]
    groups: tuple[str, ...]


@dataclass(kw_only=True)
class LensProbe(Analysis):
    """Base of the logit-lens probes: token policy, query planning, streaming statistics.

    Subclasses list their requests in :meth:`_requests` and turn the per-target log-probs into
    metrics in :meth:`_metric_values`; everything else (token ids, skipping, the one batched
    readout per update, confidence intervals, rows) lives here.

    Attributes:
        token_policy: ``"first"`` or ``"prefix_sum"`` (see the module docstring).
        final_norm: Apply the model's final norm before unembedding (Wendler et al.; default)
            or read raw residuals (the semantic hub paper's authors).
        max_items: Use at most the first ``max_items`` items of the data (None: all).
    """

    token_policy: str = "first"
    final_norm: bool = True
    max_items: int | None = None

    #: Data types the probe reads.
    required_types: ClassVar[tuple[str, ...]] = ()
    #: Metric names, in the order of :meth:`_metric_values`.
    metrics: ClassVar[tuple[str, ...]] = ()
    #: Number of target slots per query.
    n_targets: ClassVar[int] = 0

    def __post_init__(self) -> None:
        _check_policy(self.token_policy)
        if not isinstance(self.final_norm, bool):
            raise ValueError(f"final_norm={self.final_norm!r}: pass True or False.")
        check_max_items(self.max_items)
        self.options.update(
            token_policy=self.token_policy, final_norm=self.final_norm, max_items=self.max_items
        )
        self._plans: list[_Plan] = []
        self._lens: LogitLens | None = None
        self._stats: dict[str, MeanStat] = {}
        self._n_layers: int | None = None

    # -- subclass hooks ---------------------------------------------------------------------

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[_Request | str]:
        """One request per query, or a skip reason (a string) for what cannot be read."""
        raise NotImplementedError

    def _metric_values(self, logp: Tensor) -> Tensor:
        """``(query, layer, target)`` log-probs -> ``(query, metric, layer)`` values."""
        raise NotImplementedError

    # -- the Analysis contract --------------------------------------------------------------

    def queries(self, model: Any, data: Any) -> Sequence[Query]:
        """Build one prompt per item (or occurrence) and resolve every target's token ids.

        Args:
            model: The HubModel.
            data: A ParallelData (or anything ``ParallelData.load`` accepts) with the probe's
                required types.

        Returns:
            One ``Query(text, "last")`` per readable item, in item order.

        Raises:
            ValueError: Empty data, a missing type or meta field, a word with no token, or no
                readable item left after skipping.
        """
        data = _as_data(data)
        missing = [t for t in self.required_types if t not in data.types]
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs data type(s) {missing} but data {data.name!r} has "
                f"{list(data.types)}; pass data with those columns (e.g. the built-in "
                f"{self._builtin_hint()!r})."
            )
        n_items = len(data) if self.max_items is None else min(self.max_items, len(data))
        cache: dict[tuple[str, bool], tuple[int, ...]] = {}
        plans: list[_Plan] = []
        reasons: Counter[str] = Counter()
        for request in self._requests(model, data, n_items):
            if isinstance(request, str):
                reasons[request] += 1
                continue
            ids = []
            for target in request.targets:
                key = (target.word, target.leading_space)
                if key not in cache:
                    cache[key] = target_token_ids(
                        model, target.word, leading_space=target.leading_space,
                        policy=self.token_policy,
                    )  # fmt: skip
                ids.append(cache[key])
            slots = request.distinct if request.distinct is not None else range(len(ids))
            compared = [ids[s] for s in slots]
            if len(set(compared)) < len(compared):
                reasons["shared_token" if self.token_policy == "first" else "same_prefix_set"] += 1
                continue
            plans.append(_Plan(request.text, tuple(ids), request.groups))
        self.options.update(
            n_items=n_items,
            n_queries=len(plans),
            skipped_items=sum(reasons.values()),
            skip_reasons=dict(sorted(reasons.items())),
        )
        if not plans:
            raise ValueError(
                f"{type(self).__name__}: none of the {n_items} items of data {data.name!r} can be "
                f"read (skipped: {dict(reasons)}); check the data, or try another token_policy."
            )
        self._plans = plans
        self._stats = {}
        return [Query(plan.text, "last") for plan in plans]

    def setup(self, model: Any, layers: Sequence[int]) -> None:
        """Build the logit lens and reset the statistics.

        Args:
            model: The HubModel.
            layers: The scanned layers (``states`` rows arrive in this order).
        """
        if not layers:
            raise ValueError("layers=[]: scan at least one layer.")
        self._lens = LogitLens.from_model(model, final_norm=self.final_norm)
        self._n_layers = len(layers)
        self._stats = {}

    @torch.no_grad()
    def update(
        self, indices: Sequence[int], states: Sequence[Float[Tensor, "layer n_pos d_model"]]
    ) -> None:
        """Read the batch's last-token states at every layer in one lens call; add metrics.

        Args:
            indices: Query indices (into :meth:`queries`' list).
            states: ``states[k]``: ``(layer, n_pos, d_model)`` states of query ``indices[k]``;
                the last position is read.

        Raises:
            RuntimeError: Called before :meth:`queries`.
            ValueError: Mismatched lengths, unknown indices, or a layer count that differs
                from :meth:`setup`'s.
        """
        if self._lens is None or not self._plans:
            raise RuntimeError(
                f"{self.name}: call queries(model, data) and setup() before update()."
            )
        if len(indices) != len(states):
            raise ValueError(
                f"update() got {len(indices)} indices but {len(states)} states; pass one state "
                "tensor per query index."
            )
        if not indices:
            return
        for i in indices:
            if not 0 <= int(i) < len(self._plans):
                raise ValueError(
                    f"update(): query index {i} out of range; queries() listed {len(self._plans)}."
                )
        h = torch.stack([s[:, -1, :] for s in states]).float()  # (query, layer, d_model)
        n_q, n_layers = h.shape[0], h.shape[1]
        if self._n_layers is not None and n_layers != self._n_layers:
            raise ValueError(
                f"update(): states have {n_layers} layers but setup() was given "
                f"{self._n_layers}; pass one row per scanned layer."
            )
        plans = [self._plans[int(i)] for i in indices]
        width = max(sum(len(ids) for ids in plan.targets) for plan in plans)
        ids = torch.zeros((n_q, width), dtype=torch.long)
        owner = torch.full((n_q, width), -1, dtype=torch.long)
        for row, plan in enumerate(plans):
            flat = [(slot, i) for slot, slot_ids in enumerate(plan.targets) for i in slot_ids]
            ids[row] = flat[0][1]  # padding repeats a real id; its column is masked out
            ids[row, : len(flat)] = torch.tensor([i for _, i in flat])
            owner[row, : len(flat)] = torch.tensor([slot for slot, _ in flat])
        device = self._lens.weight.device
        ids, owner = ids.to(device), owner.to(device)
        readout = self._lens.readout(h, ids[:, None, :].expand(n_q, n_layers, width))
        assert readout.target_logprobs is not None
        per_column = readout.target_logprobs  # (query, layer, width)
        logp = torch.stack(
            [
                per_column.masked_fill((owner != slot)[:, None, :], -torch.inf).logsumexp(-1)
                for slot in range(self.n_targets)
            ],
            dim=-1,
        ).cpu()  # (query, layer, target): log of the summed probability of each slot's ids
        values = self._metric_values(logp)  # (query, metric, layer)
        for group in dict.fromkeys(g for plan in plans for g in plan.groups):
            rows = [k for k, plan in enumerate(plans) if group in plan.groups]
            self._stats.setdefault(group, MeanStat()).add(values[rows])

    def finalize(self, layers: Sequence[int]) -> list[Row]:
        """Rows ``(analysis, layer, metric, group, mean, ci_low, ci_high, n)``, 95% t-intervals.

        Args:
            layers: The scanned layers, in the order the states had them.

        Raises:
            RuntimeError: No update was made.
            ValueError: ``layers`` does not match the states' layer count.
        """
        if not self._stats:
            raise RuntimeError(
                f"{self.name}: no statistics; run queries(), setup() and update() first."
            )
        rows = []
        order = list(dict.fromkeys(g for plan in self._plans for g in plan.groups))
        for group in [g for g in order if g in self._stats]:
            stat = self._stats[group]
            mean, low, high = stat.ci()
            if mean.shape[1] != len(layers):
                raise ValueError(
                    f"finalize(layers={list(layers)}): the states had {mean.shape[1]} layers; "
                    "pass the scanned layers."
                )
            for m, metric in enumerate(self.metrics):
                for j, layer in enumerate(layers):
                    rows.append(
                        Row(
                            analysis=self.name,
                            layer=int(layer),
                            metric=metric,
                            group=group,
                            mean=float(mean[m, j]),
                            ci_low=float(low[m, j]),
                            ci_high=float(high[m, j]),
                            n=stat.n,
                        )
                    )
        return rows

    def _builtin_hint(self) -> str:
        return "multilingual-words"


def _as_data(data: Any) -> ParallelData:
    if isinstance(data, ParallelData):
        return data
    if data is None or (isinstance(data, (list, tuple, str)) and len(data) == 0):
        raise ValueError(
            f"data={data!r} is empty: pass a ParallelData (e.g. "
            "hublens.data.builtin.load_builtin('multilingual-words'))."
        )
    return ParallelData.load(data)


def _require_meta(data: ParallelData, index: int, keys: Sequence[str]) -> Mapping[str, Any]:
    meta = data.meta[index]
    missing = [k for k in keys if k not in meta]
    if missing:
        raise ValueError(
            f"item {index} ({data.ids[index]!r}) of data {data.name!r} lacks meta field(s) "
            f"{missing}; available: {sorted(meta) or 'none'}. Use the matching built-in data set "
            "or add those fields."
        )
    return meta


# ---------------------------------------------------------------------------- experiment 1


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
    n_targets: ClassVar[int] = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.few_shot, bool) or not isinstance(self.few_shot, int):
            raise ValueError(f"few_shot={self.few_shot!r}: pass a non-negative int.")
        if self.few_shot < 0:
            raise ValueError(f"few_shot={self.few_shot!r}: pass a non-negative int.")
        self.options.update(source=self.source, target=self.target, few_shot=self.few_shot)

    def _builtin_hint(self) -> str:
        return "multilingual-words"

    @property
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

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[_Request | str]:
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
        requests: list[_Request | str] = []
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
                _Request(
                    text=prompt,
                    targets=(_Target(targets[i], False), _Target(dominants[i], False)),
                    groups=(self._group(),),
                )
            )
        return requests

    def _metric_values(self, logp: Tensor) -> Tensor:
        target, dominant = logp[..., 0], logp[..., 1]
        return torch.stack(
            [target, dominant, target.exp(), dominant.exp(), (dominant > target).double()], dim=1
        )


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


# ---------------------------------------------------------------------------- experiment 2


def _number_word(number: int) -> str:
    import inflect

    return str(inflect.engine().number_to_words(str(number)))


@dataclass(kw_only=True)
class ArithmeticProbe(LensProbe):
    """Arithmetic logit lens: p(numeral) vs p(English number word) on ``"5=3+"``.

    The prompt is ``meta["lens_prompt"]`` (``"result=other+"`` or ``"result=other*"``); the
    answer ``meta["lens_answer"]`` is read as a numeral without a leading space (``"2"``) and as
    its English word, spelled by ``inflect``, with one (``" two"``), as the paper does.

    Metrics: ``logp_numeral``, ``logp_word``, ``frac_word_gt_numeral``; groups ``"all"``,
    ``"add"`` and ``"mul"`` (by ``meta["op"]``, when present).
    """

    name: str = "arithmetic_lens"

    metrics: ClassVar[tuple[str, ...]] = ("logp_numeral", "logp_word", "frac_word_gt_numeral")
    n_targets: ClassVar[int] = 2

    def _builtin_hint(self) -> str:
        return "arithmetic"

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[_Request | str]:
        requests: list[_Request | str] = []
        op_groups = {"+": "add", "*": "mul"}
        for i in range(n_items):
            meta = _require_meta(data, i, ("lens_prompt", "lens_answer"))
            answer = meta["lens_answer"]
            if isinstance(answer, bool) or not isinstance(answer, int) or answer < 0:
                raise ValueError(
                    f"item {i} ({data.ids[i]!r}): meta['lens_answer']={answer!r} must be a "
                    "non-negative int."
                )
            prompt = meta["lens_prompt"]
            if not isinstance(prompt, str) or not prompt:
                raise ValueError(
                    f"item {i} ({data.ids[i]!r}): meta['lens_prompt']={prompt!r} must be a "
                    "non-empty string such as '5=3+'."
                )
            groups = ("all", op_groups[meta["op"]]) if meta.get("op") in op_groups else ("all",)
            requests.append(
                _Request(
                    text=prompt,
                    targets=(_Target(str(answer), False), _Target(_number_word(answer), True)),
                    groups=groups,
                )
            )
        return requests

    def _metric_values(self, logp: Tensor) -> Tensor:
        numeral, word = logp[..., 0], logp[..., 1]
        return torch.stack([numeral, word, (word > numeral).double()], dim=1)


# ---------------------------------------------------------------------------- experiment 3


def _source_gap(
    meta: Mapping[str, Any], code: str, offset_key: str, files: dict[str, str | None]
) -> tuple[str | None, bool]:
    """Whitespace between the end of ``code`` and the next element, and whether it is exact.

    Read from the standard-library file the item came from (``meta["file"]``, ``start``,
    ``end``) when it is there and matches; otherwise guessed from the offsets (0 characters:
    none; 1: a space; more: a newline and indentation) and marked as guessed. None when the
    meta has no offsets.
    """
    end, nxt = meta.get("end"), meta.get(offset_key)
    if not isinstance(end, int) or not isinstance(nxt, int) or nxt < end:
        return None, False
    relpath, start = meta.get("file"), meta.get("start")
    if isinstance(relpath, str) and isinstance(start, int):
        if relpath not in files:
            from hublens.data.builtin.code import stdlib_root

            try:
                files[relpath] = (Path(stdlib_root()) / relpath).read_bytes().decode("utf-8")
            except (OSError, UnicodeDecodeError):
                files[relpath] = None
        text = files[relpath]
        if text is not None and text[start:end] == code and not text[end:nxt].strip():
            return text[end:nxt], True
    width = nxt - end
    return ("" if width == 0 else " " if width == 1 else "\n" + " " * (width - 1)), False


@dataclass(kw_only=True)
class CodeListProbe(LensProbe):
    """Code lists: at a comma between list elements, p(" and") vs p(" or"), p(" not"), next.

    The prompt is the item's ``code`` (a source prefix ending with the comma). Read at its last
    token: ``" and"``, ``" or"``, ``" not"`` and the first token of the true next element
    ``next`` as it follows the comma: ``" " + next`` when whitespace separates them in the
    source, ``next`` otherwise. In a list written one element per line the literal next token
    is a newline, which says nothing about the element, so such items read the element in its
    leading-space form too and are reported in group ``"multiline"`` (one-line lists:
    ``"inline"``; both: ``"all"``). The whitespace is taken from the standard-library file the
    item came from (meta ``file``/``start``/``end``/``next_offset``); without that file it is
    guessed from the offsets, and without offsets one space is assumed; both are counted in
    ``options["gap_guessed"]``.

    Metrics: ``logp_and``, ``logp_or``, ``logp_not``, ``logp_next``, ``frac_and_gt_or``.
    """

    name: str = "code_list_lens"

    required_types: ClassVar[tuple[str, ...]] = ("code", "next")
    metrics: ClassVar[tuple[str, ...]] = (
        "logp_and",
        "logp_or",
        "logp_not",
        "logp_next",
        "frac_and_gt_or",
    )
    n_targets: ClassVar[int] = 4

    def _builtin_hint(self) -> str:
        return "code-lists"

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[_Request | str]:
        files: dict[str, str | None] = {}
        guessed = 0
        requests: list[_Request | str] = []
        for i in range(n_items):
            code, nxt = data.items[i]["code"], data.items[i]["next"].strip()
            gap, exact = _source_gap(data.meta[i], code, "next_offset", files)
            if gap is None:
                gap = " "
            guessed += not exact
            layout = "multiline" if "\n" in gap or "\r" in gap else "inline"
            targets = (
                _Target("and", True),
                _Target("or", True),
                _Target("not", True),
                _Target(nxt, bool(gap)),
            )
            requests.append(_Request(code, targets, ("all", layout), distinct=(0, 1, 2)))
        self.options["gap_guessed"] = guessed
        return requests

    def _metric_values(self, logp: Tensor) -> Tensor:
        values = [logp[..., k] for k in range(4)]
        return torch.stack([*values, (logp[..., 0] > logp[..., 1]).double()], dim=1)


@dataclass(kw_only=True)
class CodeArgsProbe(LensProbe):
    """Code arguments: before an argument, p(parameter name) vs p(the actual argument).

    The prompt is the item's ``code`` (ending with the ``(`` or ``,`` before the argument).
    Both the parameter name ``param`` (the semantic role) and the argument text ``arg`` (the
    surface form) are read by their first token as they would follow there: without a leading
    space right after ``(`` with nothing between, with one when whitespace separates them
    (``", arg"``; an argument on the next line also counts as space-separated). The whitespace
    comes from the source file (meta ``file``/``start``/``end``/``arg_offset``) or is guessed
    as for :class:`CodeListProbe` (counted in ``options["gap_guessed"]``); without offsets, none
    after ``(`` and one space after anything else. Items whose param and arg share that token
    are skipped and counted.

    Metrics: ``logp_param``, ``logp_arg``, ``frac_param_gt_arg``; groups ``"all"``,
    ``"after_paren"``, ``"after_comma"``.
    """

    name: str = "code_args_lens"

    required_types: ClassVar[tuple[str, ...]] = ("code", "param", "arg")
    metrics: ClassVar[tuple[str, ...]] = ("logp_param", "logp_arg", "frac_param_gt_arg")
    n_targets: ClassVar[int] = 2

    def _builtin_hint(self) -> str:
        return "code-args"

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[_Request | str]:
        files: dict[str, str | None] = {}
        guessed = 0
        requests: list[_Request | str] = []
        for i in range(n_items):
            item = data.items[i]
            code = item["code"]
            gap, exact = _source_gap(data.meta[i], code, "arg_offset", files)
            if gap is None:
                gap = "" if code.endswith("(") else " "
            guessed += not exact
            after = {"(": "after_paren", ",": "after_comma"}.get(code.rstrip()[-1:], "after_other")
            space = bool(gap)
            targets = (_Target(item["param"].strip(), space), _Target(item["arg"].strip(), space))
            requests.append(_Request(code, targets, ("all", after)))
        self.options["gap_guessed"] = guessed
        return requests

    def _metric_values(self, logp: Tensor) -> Tensor:
        param, arg = logp[..., 0], logp[..., 1]
        return torch.stack([param, arg, (param > arg).double()], dim=1)


# ---------------------------------------------------------------------------- experiment 4


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

    @property
    def n_targets(self) -> int:  # type: ignore[override]
        """The correct role, then the others."""
        return len(self.roles)

    def _builtin_hint(self) -> str:
        return "semantics"

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[_Request | str]:
        marker = bool(model.convention.space_marker)
        requests: list[_Request | str] = []
        for i in range(n_items):
            meta = _require_meta(data, i, ("name_offsets", "name_roles"))
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
                    _Request(text, tuple(_Target(r, space) for r in order), ("all", role))
                )
        return requests

    def _metric_values(self, logp: Tensor) -> Tensor:
        correct, other = logp[..., 0], logp[..., 1:].max(-1).values
        return torch.stack([correct, other, (correct > other).double()], dim=1)
