"""`semantic_hub_scan`: one forward per batch serves every analysis.

The engine collects every analysis's :class:`~hublens.analysis.Query` objects, tokenizes
each distinct text once, sorts texts by length within windows of :data:`SORT_WINDOW` batches
(less padding, while the inputs an analysis pairs up stay close), and runs right-padded batches
with capture hooks at the scanned layers. The forward pass stops right after the last scanned
layer (:func:`hublens.hooks.forward_until`: the bridge's own ``stop_at_layer``, so the
unembedding, the largest matmul of a small multilingual model, is never computed).
Each analysis receives the states of its own queries and keeps streaming statistics only.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from hublens._version import __version__
from hublens.analysis import Analysis, Query, declares_statistics
from hublens.data import ParallelData
from hublens.hooks import (
    ActivationStore,
    AllPositions,
    LastToken,
    capture_hooks,
    forward_until,
    hook_name,
)
from hublens.hooks.names import validate_layers
from hublens.inputs import check_scan_inputs
from hublens.model import HubModel
from hublens.registry import default_analyses, resolve_analyses
from hublens.results import ScanResult


@dataclass(frozen=True)
class _Entry:
    analysis: int
    index: int
    positions: Any


def _resolve_positions(query: Query, length: int) -> list[int]:
    """Token indices (within the real tokens of the row) that a query reads."""
    if query.positions == "last":
        return [length - 1]
    if query.positions == "all":
        return list(range(length))
    out = []
    for p in query.positions:
        if not -length <= p < length:
            raise ValueError(
                f"Query positions {query.positions} out of range for {query.text!r}, which has "
                f"{length} tokens."
            )
        out.append(p % length)
    return out


#: Texts are sorted by length within windows of this many batches: padding shrinks, and an
#: analysis's buffers (e.g. similarity waiting for the other side of a pair) stay bounded.
SORT_WINDOW = 8


def _tokenize(model: HubModel, texts: list[str], bos: bool | None) -> Any:
    """The model's batch of ``texts``, with BOS added or removed when ``bos`` overrides it."""
    from hublens.model import TokenBatch

    batch = model.tokenize(texts)
    if bos is None or bos == model.prepend_bos:
        return batch
    if not bos:  # drop the BOS column; right padding keeps rows aligned
        return TokenBatch(
            ids=batch.ids[:, 1:], attention_mask=batch.attention_mask[:, 1:],
            lengths=batch.lengths - 1,
        )  # fmt: skip
    bos_id = model.tokenizer.bos_token_id
    if bos_id is None:
        raise ValueError("A query asks for BOS but the tokenizer has no bos_token_id.")
    first = torch.full_like(batch.ids[:, :1], int(bos_id))
    return TokenBatch(
        ids=torch.cat([first, batch.ids], 1),
        attention_mask=torch.cat([torch.ones_like(first), batch.attention_mask], 1),
        lengths=batch.lengths + 1,
    )


def _length_sorted_batches(texts: Sequence[Any], batch_size: int) -> list[list[Any]]:
    """Batches of ``texts``, sorted by length within windows.

    Each window of ``SORT_WINDOW * batch_size`` texts, in the order given, is sorted by
    character length (stable) and cut into batches. Right padding makes every row's result
    independent of its batch, so the order only changes the speed.
    """
    window = SORT_WINDOW * batch_size
    batches = []
    for start in range(0, len(texts), window):
        chunk = sorted(texts[start : start + window], key=lambda t: len(t[0]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return batches


def _query_lists(
    model: HubModel, analyses: Sequence[Analysis], data: ParallelData
) -> list[list[Query]]:
    lists = []
    for analysis in analyses:
        queries = list(analysis.queries(model, data))
        if not queries:
            raise ValueError(
                f"Analysis {analysis.name!r} asked for no inputs on data {data.name!r}; check "
                "that the data has the types it needs."
            )
        lists.append(queries)
    return lists


def collect(
    model: HubModel,
    analyses: Sequence[Analysis],
    query_lists: Sequence[Sequence[Query]],
    *,
    layers: Sequence[int],
    batch_size: int,
    progress: bool,
    desc: str = "scan",
) -> None:
    """Run the forwards of one pass and feed every analysis (the engine behind the scan).

    Texts keep the order in which the analyses listed them (duplicates are run once), so the
    inputs an analysis pairs up arrive close together and its buffers stay small.
    """
    by_text: dict[tuple[str, bool | None], list[_Entry]] = defaultdict(list)
    for a, (analysis, queries) in enumerate(zip(analyses, query_lists, strict=True)):
        for i, query in enumerate(queries):
            if not isinstance(query, Query) or not query.text:
                raise ValueError(f"Analysis {analysis.name!r} produced an empty query #{i}.")
            bos = None if query.bos is None or query.bos == model.prepend_bos else query.bos
            by_text[(query.text, bos)].append(_Entry(a, i, query))
    texts = list(by_text)  # (text, BOS override) keys, run once each
    last_layer = max(layers)
    names = [hook_name(layer) for layer in layers]
    batches = [
        batch
        for bos in dict.fromkeys(b for _, b in texts)  # one override per batch
        for batch in _length_sorted_batches([t for t in texts if t[1] == bos], batch_size)
    ]
    for analysis in analyses:
        analysis.setup(model, layers)
    bar = tqdm(batches, desc=desc, unit="batch", disable=not progress)
    for batch_texts in bar:
        batch = _tokenize(model, [t for t, _ in batch_texts], batch_texts[0][1])
        entries = [by_text[t] for t in batch_texts]
        only_last = all(e.positions.positions == "last" for row in entries for e in row)
        where = LastToken(batch.lengths) if only_last else AllPositions()
        store = ActivationStore()
        hooks = capture_hooks(model, store, layers=layers, where=where)
        # A MultimodalModel writes its media rows in through hooks of its own.
        inject = getattr(model, "injection_hooks", None)
        hooks += inject(batch) if inject is not None else []
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            forward_until(model, batch.ids, last_layer + 1, attention_mask=batch.attention_mask)
        states = torch.stack([store.tensor(name) for name in names], dim=0).float()
        # states: (layer, batch, d) if only_last else (layer, batch, pos, d)
        per_analysis: dict[int, tuple[list[int], list[torch.Tensor]]] = defaultdict(
            lambda: ([], [])
        )
        for row, row_entries in enumerate(entries):
            length = int(batch.lengths[row])
            for entry in row_entries:
                if only_last:
                    selected = states[:, row, None, :]
                else:
                    pos = _resolve_positions(entry.positions, length)
                    selected = states[:, row, pos, :]
                indices, tensors = per_analysis[entry.analysis]
                indices.append(entry.index)
                tensors.append(selected)
        for a, (indices, tensors) in per_analysis.items():
            analyses[a].update(indices, tensors)


def _check_summary(model: HubModel) -> dict[str, Any]:
    """The last full check of ``model`` if one ran, else the quick subset; warns on failure."""
    import warnings

    from hublens.check import check as run_check
    from hublens.check import last_report

    report = last_report(model)
    if report is None:
        report = run_check(model, quick=True)
    if not report.passed:
        warnings.warn(
            f"hublens.check failed on {model.provenance.name!r}: "
            f"{', '.join(r.name for r in report.failures())}; run hublens.check(model) for the "
            "details before trusting this scan.",
            stacklevel=3,
        )
    return report.summary()


def semantic_hub_scan(
    model: HubModel | str,
    data: ParallelData | str | os.PathLike[str] | list[dict[str, Any]],
    *,
    analyses: Sequence[str | Analysis] | None = None,
    layers: int | Iterable[int] | None = None,
    batch_size: int = 8,
    progress: bool = True,
    distributed: bool = False,
    max_tokens: int | None = None,
    method: str | None = None,
    check: bool = True,
) -> ScanResult:
    """Measure the semantic hub: per-layer similarity and logit-lens statistics with 95% CIs.

    Args:
        model: A HubModel, or a name/path for :func:`hublens.load_model`.
        data: Parallel data: a ParallelData, a .jsonl/.tsv/.csv path, a built-in name
            (``hublens.data.builtin.BUILTIN_DATASETS``) or a list of dicts.
        analyses: The analyses to run: names (:func:`hublens.registry.analysis_names`, e.g.
            ``"similarity"``) and Analysis objects (for other options), mixed; None picks the
            defaults for the data (:func:`hublens.analyses.defaults.default_analyses`).
        layers: Layers to scan (None: all).
        batch_size: Texts per forward pass. Results do not depend on it (right padding).
        progress: Show a progress bar.
        distributed: Data-parallel under ``torchrun``: each rank scans the items ``rank, rank +
            world, ...`` and the analyses' statistics are reduced across ranks
            (:mod:`hublens.distributed`); every rank returns the single-process result.
        max_tokens: Longest text allowed, in tokens with BOS (None: the model's context).
            Every text is checked before the first forward and a longer one is refused
            (never truncated), so a forward holds at most ``batch_size x max_tokens`` tokens.
        method: Whose method the analyses the scan builds follow (the defaults and names in
            ``analyses``): ``"hublens"``, ``"semantic-hub"`` or ``"wendler"``
            (:mod:`hublens.methods`, docs/methods.md); Analysis objects keep their own. None:
            each analysis's default (``"hublens"``). Recorded in every analysis's options.
        check: Record a self-check summary in the provenance (``provenance["check"]``): the
            last full :func:`hublens.check` report of this model in this process if one ran,
            else the quick subset (hooks attached, BOS policy, last-layer lens: one short
            forward), run before the scan's first batch. A failure warns; it does not stop the
            scan. False records nothing.

    Returns:
        The result: ``.table()``, ``.figure(name)``, ``.save(dir)``.

    Raises:
        ValueError: Bad data, layers or batch size, or an analysis that cannot run on the data.

    Example:
        >>> from hublens import semantic_hub_scan
        >>> result = semantic_hub_scan("gemma-3-270m", "multilingual-sentences")  # doctest: +SKIP
        >>> result.table().head()  # doctest: +SKIP
    """
    from hublens.loading import load_model

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: pass a positive integer.")
    if method is not None:
        from hublens.methods import check_method

        method = check_method(method)
    chosen_analyses = resolve_analyses(analyses, method=method) if analyses is not None else None
    if not isinstance(model, HubModel):
        model = load_model(model)
    data = ParallelData.load(data)
    chosen = validate_layers(model, layers)
    selected = (
        chosen_analyses if chosen_analyses is not None else default_analyses(data, method=method)
    )
    if not selected:
        raise ValueError("analyses=[]: pass at least one analysis, or None for the defaults.")
    names = [a.name for a in selected]
    if len(set(names)) != len(names):
        raise ValueError(f"analyses have duplicate names {names}; give each a distinct name.")
    query_lists = _query_lists(model, selected, data)
    check_scan_inputs(model, data, selected, query_lists, max_tokens=max_tokens)
    check_summary = _check_summary(model) if check else None
    full_data, world = data, 1
    if distributed:  # validated on all items above; now each rank takes its shard
        from hublens.distributed import ensure_process_group, reduce_analysis, shard_indices

        for analysis in selected:
            if analysis.reads_other_items():
                raise ValueError(
                    f"distributed=True cannot run analysis {analysis.name!r}: its prompts take "
                    "demonstrations from other items, which a shard does not have. Run it "
                    "without distributed=True (or with few_shot=0)."
                )
            if not declares_statistics(analysis):
                raise ValueError(
                    f"distributed=True cannot run analysis {analysis.name!r} "
                    f"({type(analysis).__name__}): it declares no statistics() to all-reduce. "
                    "Implement statistics(), or run it without distributed=True."
                )
        rank, world = ensure_process_group()
        if len(data) < 2 * world:
            raise ValueError(
                f"distributed=True with {world} ranks needs at least {2 * world} items (2 per "
                f"rank); data {data.name!r} has {len(data)}."
            )
        data = data.select(shard_indices(len(data), rank, world))
        whole = [dict(a.options) for a in selected]  # counts of the whole data, not a shard
        query_lists = _query_lists(model, selected, data)
        for analysis, options in zip(selected, whole, strict=True):
            analysis.options.update(options)
        progress = progress and rank == 0
    passes = [a.n_passes() for a in selected]
    n_passes = max(passes)
    for p in range(n_passes):
        active = [k for k in range(len(selected)) if passes[k] > p]
        collect(
            model,
            [selected[k] for k in active],
            [query_lists[k] for k in active],
            layers=chosen,
            batch_size=batch_size,
            progress=progress,
            desc=f"scan {data.name}" + (f" (pass {p + 1}/{n_passes})" if n_passes > 1 else ""),
        )
        for k in active:
            if distributed:  # a collective: the same analyses in the same order on every rank
                reduce_analysis(selected[k])
            if p + 1 < passes[k]:
                selected[k].next_pass()
    rows = [row for analysis in selected for row in analysis.finalize(chosen)]
    provenance = {
        "model": model.provenance.to_dict(),
        "prepend_bos": model.prepend_bos,
        "dominant_language": model.dominant_language,
        "data": {
            "name": full_data.name,
            "hash": full_data.content_hash(),
            "n_items": len(full_data),
            "types": list(full_data.types),
        },
        "layers": chosen,
        "batch_size": batch_size,
        "hublens": __version__,
    }
    if distributed:
        provenance["world_size"] = world
    if check_summary is not None:
        provenance["check"] = check_summary
    options = {a.name: dict(a.options) for a in selected}
    examples = {
        a.name: [q.text for q in qs[:3]] for a, qs in zip(selected, query_lists, strict=True)
    }
    return ScanResult(rows, provenance, options, examples)
