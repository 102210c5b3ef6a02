"""The base of the logit-lens probes: query planning, one batched readout, streaming stats.

Every probe builds one prompt per item (or per name occurrence), reads the residual stream at
the prompt's last token at every scanned layer through the logit lens, and compares the
log-probabilities of a few *target words* (see :mod:`hublens.analyses.tokens` for the
word-to-token policy, recorded in ``options["token_policy"]``).

The lens is told each row's layer, so the model's last layer always reads the model's own
output log-probs, also with ``final_norm=False`` (the last-layer rule of
:mod:`hublens.hooks.lens`; ``options["last_layer"] == "output"``). ``method=`` picks the
defaults of the options left unset (:mod:`hublens.analyses.presets`, docs/methods.md).

Items whose compared targets resolve to the same token ids (policy ``"first"``: the same first
token, e.g. French "radio" and English "radio"; ``"prefix_sum"``: the same id set) make the
comparison meaningless: they are skipped and counted in ``options["skipped_items"]`` (with the
reasons in ``options["skip_reasons"]``), never silently. A target word that yields no token at
all raises a ValueError.

``lens=`` (:mod:`hublens.lenses.resolve`; one lens or several) picks the lenses: every lens
reads the same captured states, its statistics are kept under its name and its rows carry it
(``Row.lens``); None is ``"logit"`` with ``final_norm`` and ``"logit-raw"`` without.

The engine (:func:`hublens.scan.semantic_hub_scan`) calls :meth:`~LensProbe.queries`, then
:meth:`~LensProbe.setup`, then :meth:`~LensProbe.update` per batch, then
:meth:`~LensProbe.finalize`. Each update reads all layers x queries of the batch in ONE
:meth:`Lens.readout` call per lens. Statistics are streaming (:class:`MeanStat`, per group, over a
``(metric, layer)`` vector): nothing per item is kept.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from hublens.analyses.lens_option import init_lens, lenses_for
from hublens.analyses.presets import apply_preset
from hublens.analyses.tokens import check_token_policy, target_token_ids
from hublens.analysis import Analysis, Query, Row, check_max_items
from hublens.data import ParallelData
from hublens.lenses.resolve import LensArg, NamedLens
from hublens.stats import KeyedStat, MeanStat, Stat

__all__ = ["LensProbe", "Request", "Target", "as_data", "require_meta"]


@dataclass(frozen=True)
class Target:
    """A word read at a query's last position, whether a space precedes it there, its language.

    The language (a data type such as ``"zh"``, or None) only matters to ``"prefix_sum"``,
    which adds the first UTF-8 byte token for words of non-Latin scripts.
    """

    word: str
    leading_space: bool
    language: str | None = None


@dataclass(frozen=True)
class Request:
    """What a subclass asks for one query: the prompt, its targets, groups, which must differ."""

    text: str
    targets: tuple[Target, ...]
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
        method: Whose defaults the unset options take: ``"hublens"`` (default),
            ``"semantic-hub"`` or ``"wendler"`` (:mod:`hublens.analyses.presets`).
        token_policy: ``"first"`` or ``"prefix_sum"`` (see the module docstring); None: the
            method's.
        final_norm: Apply the model's final norm to every layer (Wendler et al.; hublens) or
            read raw residuals except at the last layer, which is the model's normed output
            (the semantic hub paper's code); None: the method's.
        max_items: Use at most the first ``max_items`` items of the data (None: all).
        lens: The lens(es) to read through: ``"logit"``, ``"logit-raw"``, ``"tuned"``,
            ``"jacobian"``, a lens folder, a Lens object, or a list of them
            (:mod:`hublens.lenses.resolve`); None: ``"logit"`` if ``final_norm`` else
            ``"logit-raw"``.
    """

    method: str = "hublens"
    token_policy: str | None = None
    final_norm: bool | None = None
    max_items: int | None = None
    lens: LensArg = None

    #: Which entry of :data:`hublens.analyses.presets.PRESETS` the probe's defaults come from.
    preset: ClassVar[str] = "lens_probe"

    #: Data types the probe reads.
    required_types: ClassVar[tuple[str, ...]] = ()
    #: Metric names, in the order of :meth:`_metric_values`.
    metrics: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        explicit_final_norm = self.final_norm
        apply_preset(self, self.preset)
        check_token_policy(self.token_policy)
        check_max_items(self.max_items)
        init_lens(self, explicit_final_norm)
        self.options.update(
            token_policy=self.token_policy, final_norm=self.final_norm, max_items=self.max_items
        )
        self._plans: list[_Plan] = []
        self._lenses: list[NamedLens] = []
        self._stats: KeyedStat[MeanStat] = KeyedStat(MeanStat)
        self._layers: list[int] | None = None

    # -- subclass hooks ---------------------------------------------------------------------

    def n_targets(self) -> int:
        """Number of target slots per query (the length of every request's ``targets``)."""
        raise NotImplementedError

    def _requests(self, model: Any, data: ParallelData, n_items: int) -> list[Request | str]:
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
        data = as_data(data)
        missing = [t for t in self.required_types if t not in data.types]
        if missing:
            raise ValueError(
                f"{type(self).__name__} needs data type(s) {missing} but data {data.name!r} has "
                f"{list(data.types)}; pass data with those columns (e.g. the built-in "
                f"{self._builtin_hint()!r})."
            )
        n_items = len(data) if self.max_items is None else min(self.max_items, len(data))
        cache: dict[tuple[str, bool, str | None], tuple[int, ...]] = {}
        plans: list[_Plan] = []
        reasons: Counter[str] = Counter()
        for request in self._requests(model, data, n_items):
            if isinstance(request, str):
                reasons[request] += 1
                continue
            ids = []
            for target in request.targets:
                key = (target.word, target.leading_space, target.language)
                if key not in cache:
                    cache[key] = self._target_ids(model, target)
                ids.append(cache[key])
            if not all(ids):
                reasons["no_prefix_token"] += 1
                continue
            slots = request.distinct if request.distinct is not None else range(len(ids))
            reason = self._skip_reason([ids[s] for s in slots])
            if reason is not None:
                reasons[reason] += 1
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
        self._stats = KeyedStat(MeanStat)
        lenses_for(self, model)  # a lens that cannot be built fails here, before any forward
        return [Query(plan.text, "last") for plan in plans]

    def _target_ids(self, model: Any, target: Target) -> tuple[int, ...]:
        """The ids of a target slot; empty only where :meth:`_skips_empty` allows it."""
        try:
            return target_token_ids(
                model, target.word, leading_space=target.leading_space,
                policy=str(self.token_policy), language=target.language,
            )  # fmt: skip
        except ValueError:
            if self._skips_empty() and target.word and target.word == target.word.strip():
                return ()
            raise

    def _skips_empty(self) -> bool:
        """Whether a target word with no token skips the item (else it raises)."""
        return False

    def _skip_reason(self, compared: Sequence[tuple[int, ...]]) -> str | None:
        """Why the compared id sets make no comparison (None: they do).

        Any two sets sharing an id are skipped (Wendler et al.'s rule; under ``"first"`` this
        means the same first token).
        """
        for a in range(len(compared)):
            for b in range(a + 1, len(compared)):
                if set(compared[a]) & set(compared[b]):
                    return "shared_token" if self.token_policy == "first" else "same_prefix_set"
        return None

    def setup(self, model: Any, layers: Sequence[int]) -> None:
        """Build the lenses and reset the statistics.

        Args:
            model: The HubModel.
            layers: The scanned layers (``states`` rows arrive in this order); the lenses are
                told them, so the model's last layer reads its own output.
        """
        if not layers:
            raise ValueError("layers=[]: scan at least one layer.")
        self._lenses = lenses_for(self, model)
        self._layers = [int(layer) for layer in layers]
        self._stats = KeyedStat(MeanStat)

    @torch.no_grad()
    def update(
        self, indices: Sequence[int], states: Sequence[Float[Tensor, "layer n_pos d_model"]]
    ) -> None:
        """Read the batch's last-token states at every layer, one call per lens; add metrics.

        Args:
            indices: Query indices (into :meth:`queries`' list).
            states: ``states[k]``: ``(layer, n_pos, d_model)`` states of query ``indices[k]``;
                the last position is read.

        Raises:
            RuntimeError: Called before :meth:`queries`.
            ValueError: Mismatched lengths, unknown indices, or a layer count that differs
                from :meth:`setup`'s.
        """
        if not self._lenses or not self._plans:
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
        h = torch.stack([s[:, -1, :] for s in states], dim=1).float()  # (layer, query, d)
        n_layers, n_q = h.shape[0], h.shape[1]
        if self._layers is None or n_layers != len(self._layers):
            raise ValueError(
                f"update(): states have {n_layers} layers but setup() was given "
                f"{self._layers}; pass one row per scanned layer."
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
        groups = list(dict.fromkeys(g for plan in plans for g in plan.groups))
        for named in self._lenses:  # the same states through every lens
            device = named.lens.weight.device
            expanded = ids.to(device)[None].expand(n_layers, n_q, width)
            readout = named.lens.readout(h, expanded, layer=self._layers)
            assert readout.target_logprobs is not None
            per_column = readout.target_logprobs.transpose(0, 1)  # (query, layer, width)
            slots = torch.arange(self.n_targets(), device=device)[:, None, None]
            mask = owner.to(device) != slots  # (slot, query, width): columns of other slots
            logp = torch.stack(
                [
                    per_column.masked_fill(mask[slot][:, None, :], -torch.inf).logsumexp(-1)
                    for slot in range(self.n_targets())
                ],
                dim=-1,
            ).cpu()  # (query, layer, target): log of the summed probability of each slot's ids
            values = self._metric_values(logp)  # (query, metric, layer)
            for group in groups:
                rows = [k for k, plan in enumerate(plans) if group in plan.groups]
                self._stats.slot((named.name, group)).add(values[rows])

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
        names = self.options.get("lens") or []
        keys = [(n, g) for n in names for g in order if (n, g) in self._stats]
        for name, group in keys:
            stat = self._stats[(name, group)]
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
                            lens=name,
                        )
                    )
        return rows

    def statistics(self) -> list[Stat]:
        """A :class:`MeanStat` of ``(metric, layer)`` values per (lens, group), keyed."""
        return [self._stats]

    def _builtin_hint(self) -> str:
        return "multilingual-words"


def as_data(data: Any) -> ParallelData:
    """``data`` as a ParallelData (loaded if needed); empty data is refused with a hint."""
    if isinstance(data, ParallelData):
        return data
    if data is None or (isinstance(data, (list, tuple, str)) and len(data) == 0):
        raise ValueError(
            f"data={data!r} is empty: pass a ParallelData (e.g. "
            "hublens.data.builtin.load_builtin('multilingual-words'))."
        )
    return ParallelData.load(data)


def require_meta(data: ParallelData, index: int, keys: Sequence[str]) -> Mapping[str, Any]:
    """Item ``index``'s meta, after checking it holds ``keys`` (ValueError naming the fix)."""
    meta = data.meta[index]
    missing = [k for k in keys if k not in meta]
    if missing:
        raise ValueError(
            f"item {index} ({data.ids[index]!r}) of data {data.name!r} lacks meta field(s) "
            f"{missing}; available: {sorted(meta) or 'none'}. Use the matching built-in data set "
            "or add those fields."
        )
    return meta
