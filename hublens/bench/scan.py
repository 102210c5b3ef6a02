"""Scan throughput: ``semantic_hub_scan`` against plain transformers and nnsight doing the same.

The measured scan is similarity (baseline-adjusted cosine, every pair of the first type with
the others) plus a logit lens at the last position of every text (log-prob of the item's first
English word at every layer). The plain reference does what the paper's code does: run each
batch with ``output_hidden_states=True``, keep every last-token state in memory, then compute
the same numbers in bulk (full-vocabulary ``log_softmax`` for the lens). The nnsight variant
saves the decoder layers' outputs inside ``model.trace`` instead. Both references report the
numbers they computed, compared against the scan's so that a fast wrong path cannot pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from hublens.analysis import Analysis, Query, Row
from hublens.data import ParallelData
from hublens.hooks import LogitLens
from hublens.registry import make_analysis
from hublens.stats import MeanStat


def first_word_ids(model: Any, data: ParallelData) -> list[int]:
    """Per item, the first token of its first type's first word (with a leading space)."""
    out = []
    for text in data.column(data.types[0]):
        ids = model.word_token_ids(text.split()[0].strip(".,;:!?\"'"))
        out.append(ids[0] if ids else int(model.tokenizer.unk_token_id or 0))
    return out


@dataclass
class LastTokenLens(Analysis):
    """Lens at the last token: log-prob of the item's first English word, per layer and type.

    One :meth:`LogitLens.readout` per batch over all layers x texts (the cost of a lens probe).
    """

    name: str = "lens"
    options: dict[str, Any] = field(default_factory=dict)

    def queries(self, model: Any, data: Any) -> list[Query]:
        """Every text, item by item (the same texts similarity reads: one forward serves both)."""
        self._types = list(data.types)
        self._targets = first_word_ids(model, data)
        self.options.update(target="first token of the first word of the first type")
        return [Query(data.column(t)[i]) for i in range(len(data)) for t in self._types]

    def setup(self, model: Any, layers: Sequence[int]) -> None:
        """Fresh statistics and the lens."""
        self._lens = LogitLens.from_model(model, final_norm=True)
        self._stats = {t: MeanStat() for t in self._types}

    def update(self, indices: Sequence[int], states: Sequence[Tensor]) -> None:
        """One readout of every layer of every query in the batch."""
        k = len(self._types)
        h = torch.stack([s[:, 0] for s in states], dim=1)  # (L, B, d)
        ids = torch.tensor([self._targets[i // k] for i in indices])
        per_row = ids[None, :, None].expand(h.shape[0], -1, 1)
        logp = self._lens.readout(h, per_row).target_logprobs
        assert logp is not None
        for j, index in enumerate(indices):
            self._stats[self._types[index % k]].add(logp[:, j, 0][None])

    def finalize(self, layers: Sequence[int]) -> list[Row]:
        """Mean log-prob per layer and type."""
        rows = []
        for t, stat in self._stats.items():
            mean, low, high = stat.ci()
            rows += [
                Row(
                    self.name,
                    layer,
                    "target_logprob",
                    t,
                    float(mean[j]),
                    float(low[j]),
                    float(high[j]),
                    stat.n,
                )
                for j, layer in enumerate(layers)
            ]
        return rows


def scan_analyses() -> list[Analysis]:
    """The benchmarked scan: similarity (no cues, so the lens reads the same texts) + lens."""
    return [make_analysis("similarity", cues={}), LastTokenLens()]


def hublens_scan(model: Any, data: ParallelData, *, batch_size: int) -> dict[str, Tensor]:
    """Run ``semantic_hub_scan`` and return its numbers in the references' layout."""
    from hublens.scan import semantic_hub_scan

    result = semantic_hub_scan(
        model, data, analyses=scan_analyses(), batch_size=batch_size, progress=False, check=False
    )  # the self-check is a fixed cost
    table = result.table()
    out = {}
    for (analysis, metric, group), frame in table.groupby(["analysis", "metric", "group"]):
        if metric in ("adjusted_cosine", "target_logprob"):
            out[f"{analysis}/{group}"] = torch.tensor(frame.sort_values("layer")["mean"].values)
    return out


def _texts(data: ParallelData) -> list[str]:
    return [data.column(t)[i] for i in range(len(data)) for t in data.types]


def _hf_states(reference: Any, ids: Tensor, mask: Tensor) -> list[Tensor]:
    """Every decoder layer's output via ``output_hidden_states`` (last one pre-norm: a hook).

    :func:`reference_scan` norms the last one for similarity, as the scan does.
    """
    captured: dict[str, Tensor] = {}
    layers = reference.model.layers
    handle = layers[-1].register_forward_hook(
        lambda m, a, o: captured.__setitem__("last", o[0] if isinstance(o, tuple) else o)
    )
    try:
        with torch.no_grad():
            hidden = reference(
                input_ids=ids, attention_mask=mask, output_hidden_states=True
            ).hidden_states
    finally:
        handle.remove()
    return [hidden[i + 1] for i in range(len(layers) - 1)] + [captured["last"]]


def reference_scan(
    model: Any, reference: Any, data: ParallelData, *, batch_size: int, lm: Any | None = None
) -> dict[str, Tensor]:
    """The same numbers computed the plain way (``lm``: an nnsight model, else transformers).

    Args:
        model: The HubModel (for tokenization only: the same ids as the scan).
        reference: The plain transformers model.
        data: The data.
        batch_size: Texts per forward.
        lm: An nnsight LanguageModel around a copy of ``reference``, to trace instead.

    Returns:
        ``{"similarity/<a>-<b>": (L,), "lens/<type>": (L,)}``.
    """
    from hublens.bench.forward import nnsight_last_tokens

    texts = _texts(data)
    k = len(data.types)
    last: list[Tensor] = []
    for start in range(0, len(texts), batch_size):
        batch = model.tokenize(texts[start : start + batch_size])
        if lm is None:
            states = _hf_states(reference, batch.ids, batch.attention_mask)
        else:
            states = nnsight_last_tokens(lm, batch.ids, batch.attention_mask)
        rows = torch.arange(batch.ids.shape[0])
        last.append(torch.stack([s[rows, batch.lengths - 1] for s in states], dim=1))
    h = torch.cat(last).double()  # (n_texts, L, d), all kept: the paper's way
    out = {}
    # similarity reads the model's output at the last layer (the final norm applied)
    hs = h.clone()
    with torch.no_grad():
        hs[:, -1] = reference.model.norm(h[:, -1].float()).double()
    unit = hs / hs.norm(dim=-1, keepdim=True)
    n = len(data)
    for j, other in enumerate(data.types[1:], start=1):
        x, y = unit[0::k].transpose(0, 1), unit[j::k].transpose(0, 1)  # (L, n, d)
        cos = torch.einsum("lid,ljd->lij", x, y)
        diag = cos.diagonal(dim1=-2, dim2=-1)
        adjusted = diag - (cos.sum(-1) - diag) / (n - 1)
        out[f"similarity/{data.types[0]}-{other}"] = adjusted.mean(-1)
    # The external baseline: the paper's full-vocabulary lens on plain transformers modules,
    # written out here on purpose (not hublens's readout core) so that it checks the core.
    norm, weight = reference.model.norm, reference.lm_head.weight
    targets = torch.tensor(first_word_ids(model, data))
    with torch.no_grad():
        logits = norm(h.float()) @ weight.T  # (n_texts, L, V)
        softcap = getattr(reference.config, "final_logit_softcapping", None)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        logp = torch.log_softmax(logits, dim=-1)
    index = targets.repeat_interleave(k)[:, None, None].expand(-1, h.shape[1], 1)
    per_text = logp.gather(-1, index)
    for j, t in enumerate(data.types):
        out[f"lens/{t}"] = per_text[j::k, :, 0].double().mean(0)
    return out


def max_difference(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    """Largest |difference| over the numbers both computed (inf if the keys differ)."""
    if set(a) != set(b):
        return float("inf")
    return max(float((a[key].double() - b[key].double()).abs().max()) for key in a)


def scan_data(n_items: int, types: Sequence[str] = ("en", "zh", "fr")) -> ParallelData:
    """The first ``n_items`` built-in multilingual sentences (up to 164), ``types`` only."""
    from hublens.data.builtin import load_builtin

    full = load_builtin("multilingual-sentences")
    n = min(n_items, len(full))
    records = [{t: full[i][t] for t in types} | {"id": full.ids[i]} for i in range(n)]
    return ParallelData.from_records(records, types=list(types), name="multilingual-sentences")
