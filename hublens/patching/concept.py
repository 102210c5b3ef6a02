"""Concept patching across translation prompts (Dumas et al., "Separating Tongue from Thought").

A *source* prompt translates concept X from language A to B; a *target* prompt translates
another concept Y from C to D (few-shot, the Wendler format of :mod:`hublens.patching.prompts`).
The source's ``resid_post`` at the last token (at one layer, or ``span`` consecutive layers) is
written over the target's at the same position, and the target's next-token distribution is
read. Per patched layer, over word pairs (mean and 95% t-interval, as the rest of hublens):

* ``p_X_D``: the source concept in the target's output language (concept moved, language kept);
* ``p_X_B``: the source concept in the source's output language (the source's answer);
* ``p_Y_D``: the target's own answer;
* ``p_Y_B``: the target concept in the source's output language (language moved, concept kept);
* ``win_*``: the fraction of pairs in which that reading is the most probable of the four.

Dumas et al. find the output language moves at earlier layers than the concept: ``p_Y_B`` rises
at layers where ``p_Y_D`` still holds, and ``p_X_D`` rises later. The *mean* variant patches the
mean of X's states over several source prompts (input languages ``mean_sources``, all into B).

Every table carries its controls (analysis ``concept_patching/<condition>``):

* ``unrelated``: the state of an unrelated, non-translation prompt is patched instead;
* ``placebo``: TransformerLens 4.3's :class:`NormMatchedPlacebo` (interchange.py): the target
  state is moved exactly as far as the real patch moves it, along a seeded random direction
  (a rank-1 random basis; the reference is the full interchange, whose displacement is
  ``source - target``); with ``span > 1`` every layer's move is computed from the clean states;
* ``none``: the target unpatched (the same numbers at every layer).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm
from transformer_lens.tools.analysis.interchange import (
    NormMatchedPlacebo,
    SubspaceInterchange,
    random_basis,
)

from hublens.analysis import Row
from hublens.data import ParallelData
from hublens.hooks.names import validate_layers
from hublens.patching.forwards import (
    PatchTarget,
    check_position,
    read_states,
    resolve_positions,
)
from hublens.patching.prompts import check_languages, demo_items, language_name, translation_prompt
from hublens.results import ScanResult
from hublens.stats import MeanStat

__all__ = ["ANALYSIS", "CONDITIONS", "READINGS", "UNRELATED_PROMPTS", "ConceptPatching"]

#: Analysis-name prefix of the rows.
ANALYSIS = "concept_patching"
#: The four readings, in the order of the ``(n, 4)`` token-id table.
READINGS = ("X_D", "X_B", "Y_D", "Y_B")
#: Conditions (the ``/<condition>`` suffix of the analysis names).
CONDITIONS = ("patch", "mean_patch", "unrelated", "placebo", "none")
#: Non-translation prompts whose last-token state the ``unrelated`` control patches in.
UNRELATED_PROMPTS = (
    "The meeting was moved to Tuesday because the",
    "She opened the window and looked at the",
    "Water boils at a lower temperature on top of a",
    "He counted the coins twice before putting them in the",
)
#: Preferred input languages of the target prompt when ``target_in`` is not given.
_TARGET_IN_ORDER = ("de", "es", "fr", "ja", "en", "zh")


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r}: pass an int >= {minimum}.")
    return value


@dataclass(kw_only=True)
class ConceptPatching:
    """Patch a translation prompt's last-token state into another translation prompt.

    Attributes:
        source: A, the source prompt's input language.
        source_out: B, the source prompt's output language.
        target: D, the target prompt's output language.
        target_in: C, the target prompt's input language (None: the first of de, es, fr, ja,
            en, zh that is a column and differs from A, B and D).
        layers: Layers to patch at (None: all); each is the first of ``span`` patched layers.
        span: Consecutive layers patched together (1: one layer).
        n_items: Word pairs (a seeded sample of the table; None: every item).
        few_shot: Demonstration pairs per prompt.
        mean_sources: Input languages of the mean variant (None: every column but B, C and D;
            empty: skip the variant).
        controls: Run the unrelated-prompt and placebo controls (the unpatched run is always
            made).
        position: Patch position, counted from the end when negative (-1: the last token).
        batch_size: Prompts per forward.
        seed: Seed of the item sample and of the placebo directions.
        language_names: Overrides of the prompt's language names.
        progress: Show a progress bar.

    Example:
        >>> result = ConceptPatching(source="fr", target="zh").run(model)  # doctest: +SKIP
        >>> result.save("report/patching")  # doctest: +SKIP
    """

    source: str = "fr"
    source_out: str = "en"
    target: str = "zh"
    target_in: str | None = None
    layers: Any = None
    span: int = 1
    n_items: int | None = 24
    few_shot: int = 2
    mean_sources: Sequence[str] | None = None
    controls: bool = True
    position: int = -1
    batch_size: int = 16
    seed: int = 0
    language_names: dict[str, str] = field(default_factory=dict)
    progress: bool = True

    # ------------------------------------------------------------------ checks

    def _languages(self, data: ParallelData) -> tuple[str, str, str, str, list[str]]:
        a, b, d = self.source, self.source_out, self.target
        check_languages(data, {"source": a, "source_out": b, "target": d})
        c = self.target_in
        if c is None:
            free = [x for x in _TARGET_IN_ORDER if x in data.types and x not in (a, b, d)]
            free += [x for x in data.types if x not in (a, b, d) and x not in free]
            if not free:
                raise ValueError(
                    f"target_in=None: the word table {data.name!r} has no column besides "
                    f"{a}, {b} and {d}; pass target_in=... explicitly."
                )
            c = free[0]
        check_languages(data, {"target_in": c})
        if b == d:
            raise ValueError(
                f"source_out={b!r} equals target={d!r}: the source's and the target's output "
                "languages must differ, or p(X in B) and p(X in D) are the same number."
            )
        for name, (x, y) in {"source/source_out": (a, b), "target_in/target": (c, d)}.items():
            if x == y:
                raise ValueError(f"{name} are both {x!r}: a prompt must translate between two.")
        means = (
            [x for x in data.types if x not in (b, c, d)]
            if self.mean_sources is None
            else list(self.mean_sources)
        )
        check_languages(data, {f"mean_sources[{i}]": x for i, x in enumerate(means)})
        if b in means:
            raise ValueError(f"mean_sources contains source_out={b!r}; drop it.")
        return a, b, c, d, means

    def _check_options(self, model: Any) -> tuple[list[int], int]:
        span = _positive_int("span", self.span)
        n = model.n_layers
        starts = validate_layers(model, self.layers)
        if self.layers is None:
            starts = [layer for layer in starts if layer + span <= n]
        late = [layer for layer in starts if layer + span > n]
        if late:
            raise ValueError(
                f"layers={late} with span={span} would patch past the last layer ({n - 1}); "
                f"start at most at layer {n - span}, or lower span."
            )
        if self.n_items is not None:
            _positive_int("n_items", self.n_items, minimum=2)
        _positive_int("few_shot", self.few_shot, minimum=0)
        _positive_int("batch_size", self.batch_size)
        check_position(self.position)
        return starts, span

    def _token_ids(self, model: Any, data: ParallelData, item: int, lang: str) -> int:
        word = data.column(lang)[item]
        ids = model.word_token_ids(word, leading_space=False) if word.strip() == word else []
        if not ids:
            raise ValueError(
                f"The word {word!r} (item {data[item].id!r}, language {lang!r}) yields no "
                "token for this model; fix or drop that item of the word table."
            )
        return int(ids[0])

    # ------------------------------------------------------------------ the run

    def _pairs(self, data: ParallelData) -> list[tuple[int, int]]:
        n = len(data) if self.n_items is None else min(self.n_items, len(data))
        if n < 2:
            raise ValueError(f"The word table {data.name!r} has {len(data)} item(s); pass 2+.")
        items = sorted(random.Random(self.seed).sample(range(len(data)), n))
        return [(items[k], items[(k + max(1, n // 2)) % n]) for k in range(n)]

    def run(self, model: Any, data: ParallelData | None = None) -> ScanResult:
        """Run the patching experiment; every input is checked before the first forward.

        Args:
            model: A HubModel.
            data: The word table (default: the built-in ``multilingual-words``).

        Returns:
            A :class:`~hublens.results.ScanResult`: rows ``concept_patching/<condition>``,
            metrics ``p_*`` and ``win_*`` (see the module docstring), group
            ``"A:B->C:D"``; ``save(dir)`` writes result.json, result.csv and report.html.

        Raises:
            ValueError / TypeError: Unknown or repeated languages, layers or span out of
                range, a word with no token, a prompt without the patch position, too few
                items for the demonstrations.
        """
        started = time.perf_counter()
        data = ParallelData.load("multilingual-words") if data is None else data
        a, b, c, d, means = self._languages(data)
        starts, span = self._check_options(model)
        names = {
            x: language_name(x, self.language_names, arg)
            for arg, x in [("source", a), ("source_out", b), ("target_in", c), ("target", d)]
            + [("mean_sources", x) for x in means]
        }
        pairs, ids, dropped = [], [], 0
        for x, y in self._pairs(data):
            row = [
                self._token_ids(model, data, x, d),
                self._token_ids(model, data, x, b),
                self._token_ids(model, data, y, d),
                self._token_ids(model, data, y, b),
            ]
            if len(set(row)) < 4:
                dropped += 1  # two readings share a token: "which wins" is undefined
                continue
            pairs.append((x, y))
            ids.append(row)
        if len(pairs) < 2:
            raise ValueError(
                f"Only {len(pairs)} word pair(s) have four distinct readout tokens "
                f"({dropped} dropped); use other languages or more items."
            )
        token_ids = torch.tensor(ids, dtype=torch.long)
        langs = sorted({a, b, c, d, *means})
        demos = [demo_items(data, x, [x, y], self.few_shot, langs) for x, y in pairs]
        xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
        src = [translation_prompt(data, x, m, a, b, names) for x, m in zip(xs, demos, strict=True)]
        tgt = [translation_prompt(data, y, m, c, d, names) for y, m in zip(ys, demos, strict=True)]
        mean_src = {
            lang: [
                translation_prompt(data, x, m, lang, b, names)
                for x, m in zip(xs, demos, strict=True)
            ]
            for lang in means
        }
        unrelated = list(UNRELATED_PROMPTS)  # pair k gets unrelated[k % len(unrelated)]
        pos = {
            "source": resolve_positions(model, src, self.position, "source_prompts"),
            "target": resolve_positions(model, tgt, self.position, "target_prompts"),
            "unrelated": resolve_positions(model, unrelated, self.position, "unrelated_prompts"),
        }
        for lang, prompts in mean_src.items():
            pos[lang] = resolve_positions(model, prompts, self.position, f"{lang}_prompts")
        # -------------------------------------------------------- forwards (all checked)
        conditions = ["patch", *(["mean_patch"] if means else [])]
        conditions += ["unrelated", "placebo"] if self.controls else []
        n = len(pairs)
        needed = sorted({layer + k for layer in starts for k in range(span)})
        total = n * (2 + len([x for x in means if x != a]) + len(starts) * len(conditions))
        bar = tqdm(total=total, desc="patching", unit="prompt", disable=not self.progress)
        tick = bar.update
        bs = self.batch_size
        states = {"patch": read_states(model, src, pos["source"], needed, batch_size=bs, tick=tick)}
        if means:
            stack = [  # the source language's own prompts are the source prompts: read once
                states["patch"]
                if x == a
                else read_states(model, mean_src[x], pos[x], needed, batch_size=bs, tick=tick)
                for x in means
            ]
            states["mean_patch"] = torch.stack(stack).mean(0)
        if self.controls:
            few = read_states(model, unrelated, pos["unrelated"], needed, batch_size=bs)
            states["unrelated"] = few[:, torch.arange(n) % len(unrelated)]
        target = PatchTarget(model, tgt, pos["target"], batch_size=bs, tick=tick)
        clean, base = target.logprobs(token_ids, capture=needed)
        assert base is not None
        if self.controls:
            states["placebo"] = self._placebo(base, states["patch"], needed)
        stats: dict[tuple[str, int], MeanStat] = {}
        keys, runs = [], []
        for layer in starts:
            chosen = [needed.index(layer + k) for k in range(span)]
            for condition in conditions:
                keys.append((condition, layer))
                runs.append((states[condition][chosen], [layer + k for k in range(span)]))
        results = target.logprobs_runs(token_ids, runs, tick=tick)
        for key, logp in zip(keys, results, strict=True):
            stats[key] = _metric_stat(logp)
        bar.close()
        none = _metric_stat(clean)
        for layer in starts:
            stats[("none", layer)] = none
        group = f"{a}:{b}->{c}:{d}"
        rows = [
            Row(f"{ANALYSIS}/{cond}", layer, metric, group, float(m), float(lo), float(hi), st.n)
            for (cond, layer), st in stats.items()
            for metric, m, lo, hi in zip(_METRICS, *st.ci(), strict=True)
        ]
        options = {
            "source": a,
            "source_out": b,
            "target_in": c,
            "target": d,
            "mean_sources": means,
            "span": span,
            "few_shot": self.few_shot,
            "position": self.position,
            "n_pairs": n,
            "pairs_dropped_shared_token": dropped,
            "seed": self.seed,
            "token_policy": "first token of the word, no leading space (it follows a quote)",
            "placebo": "TransformerLens NormMatchedPlacebo, rank-1 random basis per layer",
            "unrelated_prompts": list(UNRELATED_PROMPTS),
        }
        provenance = {
            "model": model.provenance.to_dict(),
            "prepend_bos": model.prepend_bos,
            "data": data.provenance(),
            "layers": starts,
            "batch_size": bs,
            "seconds": round(time.perf_counter() - started, 1),
            "hublens": _version(),
        }
        examples = [f"source: {src[0]}", f"target: {tgt[0]}", f"unrelated: {unrelated[0]}"]
        names_out = [f"{ANALYSIS}/{cond}" for cond in [*conditions, "none"]]
        return ScanResult(
            rows,
            provenance,
            {name: dict(options, condition=name.split("/")[1]) for name in names_out},
            {name: examples for name in names_out},
        )

    def _placebo(
        self, base: torch.Tensor, source: torch.Tensor, layers: Sequence[int]
    ) -> torch.Tensor:
        d_model = base.shape[-1]
        reference = SubspaceInterchange(torch.eye(d_model))
        out = torch.empty_like(base)
        for j, layer in enumerate(layers):
            basis = random_basis(d_model, 1, self.seed * 1000 + layer)
            out[j] = NormMatchedPlacebo(reference, basis)(base[j], source[j])
        return out


#: Metric names, in the order :func:`_metric_stat` stacks them.
_METRICS = tuple(f"p_{r}" for r in READINGS) + tuple(f"win_{r}" for r in READINGS)


def _metric_stat(logp: torch.Tensor) -> MeanStat:
    """Per-pair probabilities of the four readings and one-hot winners, as one statistic."""
    p = logp.double().exp()
    wins = torch.nn.functional.one_hot(p.argmax(-1), p.shape[-1]).double()
    stat = MeanStat()
    stat.add(torch.cat([p, wins], dim=1))
    return stat


def _version() -> str:
    from hublens import __version__

    return __version__
