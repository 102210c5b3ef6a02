"""The paper's claims, each with the rule that turns measured rows into a verdict.

A rule reads the rows of one scan (:class:`hublens.analysis.Row`) and the model's depth, and
returns a :class:`Verdict`: ``"reproduced"``, ``"not reproduced"``, ``"not applicable"`` (the
model cannot take the input: media on a text-only model) or ``"not measured"`` (the experiment
was not run at this size), with the numbers behind it. Every rule is stated in words in
:attr:`Claim.rule` (shown in the report) and written once below.

"Middle layers" are layers ``l`` with ``n_layers / 4 <= l < 3 n_layers / 4`` (the hub region of
the paper's figures). "CI above 0" means the row's 95% CI low end is above 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hublens.analysis import Row

VerdictName = Literal["reproduced", "not reproduced", "not applicable", "not measured"]


@dataclass(frozen=True)
class Verdict:
    """A claim's outcome on one model.

    Attributes:
        verdict: The outcome.
        measured: A one-line summary of the numbers behind it.
        numbers: Those numbers, JSON-ready.
    """

    verdict: VerdictName
    measured: str
    numbers: dict[str, Any] = field(default_factory=dict)


Rule = Callable[[Sequence[Row], int], Verdict]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, where its numbers come from, and its verdict rule.

    Attributes:
        key: Short identifier.
        section: The paper's experiment.
        claim: The claim, in words.
        data: The built-in data set (or ``"trajectories"``, ``"vision"``, ``"audio"``).
        rule: The verdict rule, in words.
        decide: The rule in code.
        media: ``"text"``, ``"vision"`` or ``"audio"``: what the model must take.
    """

    key: str
    section: str
    claim: str
    data: str
    rule: str
    decide: Rule
    media: str = "text"


def middle_layers(n_layers: int) -> list[int]:
    """Layers ``n/4 <= l < 3n/4`` (at least one)."""
    lo, hi = math.ceil(n_layers / 4), math.ceil(3 * n_layers / 4)
    return list(range(lo, max(hi, lo + 1)))


def _pick(rows: Sequence[Row], analysis: str, metric: str, group: str | None) -> dict[int, Row]:
    """Rows of (analysis, metric, group) by layer; group None takes the first group present."""
    chosen = [r for r in rows if r.analysis == analysis and r.metric == metric]
    if group is None and chosen:
        group = chosen[0].group
    return {r.layer: r for r in chosen if r.group == group}


def _missing(what: str) -> Verdict:
    return Verdict("not measured", f"no rows for {what}", {})


def ci_above_zero(analysis: str, metric: str, group: str | None) -> Rule:
    """Reproduced when the CI is above 0 at more than half of the middle layers."""

    def decide(rows: Sequence[Row], n_layers: int) -> Verdict:
        by_layer = _pick(rows, analysis, metric, group)
        mids = [by_layer[m] for m in middle_layers(n_layers) if m in by_layer]
        if not mids:
            return _missing(f"{analysis} {metric}")
        above = [r.layer for r in mids if r.ci_low > 0]
        best = max(mids, key=lambda r: r.mean)
        ok = len(above) > len(mids) / 2
        return Verdict(
            "reproduced" if ok else "not reproduced",
            f"{metric} CI above 0 at {len(above)}/{len(mids)} middle layers; peak "
            f"{best.mean:.4f} [{best.ci_low:.4f}, {best.ci_high:.4f}] at layer {best.layer}",
            {"middle_layers_above_0": above, "n_middle": len(mids), "peak_layer": best.layer,
             "peak_mean": best.mean, "peak_ci": [best.ci_low, best.ci_high]},
        )  # fmt: skip

    return decide


def ci_above_zero_somewhere(analysis: str, metric: str, group: str | None) -> Rule:
    """Reproduced when the CI is above 0 at one middle layer or more."""

    def decide(rows: Sequence[Row], n_layers: int) -> Verdict:
        by_layer = _pick(rows, analysis, metric, group)
        mids = [by_layer[m] for m in middle_layers(n_layers) if m in by_layer]
        if not mids:
            return _missing(f"{analysis} {metric}")
        above = [r.layer for r in mids if r.ci_low > 0]
        best = max(mids, key=lambda r: -math.inf if math.isnan(r.ci_low) else r.ci_low)
        return Verdict(
            "reproduced" if above else "not reproduced",
            f"{metric} CI above 0 at {len(above)}/{len(mids)} middle layers "
            f"({above or 'none'}); highest CI low end {best.mean:.4f} [{best.ci_low:.4f}, "
            f"{best.ci_high:.4f}] at layer {best.layer} (n = {best.n})",
            {"middle_layers_above_0": above, "n_middle": len(mids), "best_layer": best.layer,
             "best_mean": best.mean, "best_ci": [best.ci_low, best.ci_high], "n": best.n},
        )  # fmt: skip

    return decide


def share_above_half(analysis: str, metric: str, group: str | None) -> Rule:
    """Reproduced when the mean share exceeds 0.5 at some middle layer."""

    def decide(rows: Sequence[Row], n_layers: int) -> Verdict:
        by_layer = _pick(rows, analysis, metric, group)
        mids = [by_layer[m] for m in middle_layers(n_layers) if m in by_layer]
        if not mids:
            return _missing(f"{analysis} {metric}")
        best = max(mids, key=lambda r: r.mean)
        ok = best.mean > 0.5
        return Verdict(
            "reproduced" if ok else "not reproduced",
            f"max over middle layers of {metric} = {best.mean:.3f} at layer {best.layer} "
            f"(n = {best.n}; rule: > 0.5)",
            {"peak_layer": best.layer, "peak_mean": best.mean, "n": best.n},
        )

    return decide


def middle_then_last(analysis: str, dominant: str, target: str, group: str | None) -> Rule:
    """Reproduced when ``dominant > target`` at some middle layer and ``target > dominant`` last."""

    def decide(rows: Sequence[Row], n_layers: int) -> Verdict:
        dom, tgt = _pick(rows, analysis, dominant, group), _pick(rows, analysis, target, group)
        layers = sorted(set(dom) & set(tgt))
        if not layers:
            return _missing(f"{analysis} {dominant}/{target}")
        mids = [m for m in middle_layers(n_layers) if m in dom and m in tgt]
        won = [m for m in mids if dom[m].mean > tgt[m].mean]
        last = layers[-1]
        ends = tgt[last].mean > dom[last].mean
        return Verdict(
            "reproduced" if won and ends else "not reproduced",
            f"{dominant} > {target} at middle layers {won or 'none'}; at layer {last} "
            f"{target} {tgt[last].mean:.4f} vs {dominant} {dom[last].mean:.4f}",
            {"middle_layers_dominant_wins": won, "last_layer": last,
             "last_target": tgt[last].mean, "last_dominant": dom[last].mean},
        )  # fmt: skip

    return decide


def ordered(analysis: str, metrics: Sequence[str], group: str | None) -> Rule:
    """Reproduced when the means are in the given (decreasing) order at most middle layers."""

    def decide(rows: Sequence[Row], n_layers: int) -> Verdict:
        series = [_pick(rows, analysis, m, group) for m in metrics]
        mids = [m for m in middle_layers(n_layers) if all(m in s for s in series)]
        if not mids:
            return _missing(f"{analysis} {', '.join(metrics)}")
        steps = list(zip(series[:-1], series[1:], strict=True))
        good = [m for m in mids if all(a[m].mean > b[m].mean for a, b in steps)]
        mid = mids[len(mids) // 2]
        values = ", ".join(
            f"{name} {s[mid].mean:.4f}" for name, s in zip(metrics, series, strict=True)
        )
        return Verdict(
            "reproduced" if len(good) > len(mids) / 2 else "not reproduced",
            f"order holds at {len(good)}/{len(mids)} middle layers; layer {mid}: {values}",
            {"middle_layers_ordered": good, "n_middle": len(mids)},
        )

    return decide


def not_applicable(reason: str) -> Rule:
    """A rule for claims the reproduce command does not measure on this kind of model."""

    def decide(rows: Sequence[Row], n_layers: int) -> Verdict:
        return Verdict("not applicable", reason)

    return decide


MIDDLE = "at middle layers (n/4 <= l < 3n/4)"
#: Every claim the reproduce command checks, in the paper's order.
CLAIMS: tuple[Claim, ...] = (
    Claim("multilingual_similarity", "1 multilingual",
          "EN and ZH translations have similar hidden states in the middle layers",
          "multilingual-sentences",
          f"baseline-adjusted cosine (en-zh) has its 95% CI above 0 at most layers {MIDDLE}",
          ci_above_zero("similarity", "adjusted_cosine", "en-zh")),
    Claim("translation_lens", "1 multilingual",
          "Translating FR->ZH, the English word is likelier than the Chinese one in the middle "
          "layers; the Chinese word wins at the last layer",
          "multilingual-words",
          f"mean p(English) > p(Chinese) at some layer {MIDDLE}, and p(Chinese) > p(English) "
          "at the last layer",
          middle_then_last("translation_lens", "p_dominant", "p_target", None)),
    Claim("running_text_lens", "1 multilingual",
          "On Chinese text, the English translation is likelier than the Chinese next token in "
          "the middle layers",
          "multilingual-sentences",
          f"share of positions with max log p(English) > log p(Chinese) above 0.5 at some layer "
          f"{MIDDLE}",
          share_above_half("chinese_running_text", "frac_en_gt_zh", None)),
    Claim("language_probability", "1 multilingual",
          "Chinese input is read as English in the middle layers (p(lang | h), Fig. 4)",
          "multilingual-sentences",
          f"on Chinese text, mean p(en | h) > p(zh | h) at most layers {MIDDLE}",
          ordered("language_probability", ("p_en", "p_zh"), "zh")),
    Claim("arithmetic_similarity", "2 arithmetic",
          '"3+2" and "three plus two" have similar hidden states in the middle layers',
          "arithmetic",
          f"adjusted cosine (numeral-words) has its CI above 0 at most layers {MIDDLE}",
          ci_above_zero("similarity", "adjusted_cosine", "numeral-words")),
    Claim("arithmetic_groups", "2 arithmetic",
          "Exact matches are more similar than same-result pairs, which are more similar than "
          "different-result pairs",
          "arithmetic",
          f"cosine exact > same result > different result at most layers {MIDDLE}",
          ordered("similarity_grouped",
                  ("cosine_exact_match", "cosine_same_group", "cosine_different_group"), None)),
    Claim("arithmetic_lens", "2 arithmetic",
          'On "5=3+", the English word " two" is likelier than the numeral "2" in the middle '
          "layers",
          "arithmetic",
          f"share of prompts with log p(word) > log p(numeral) above 0.5 at some layer {MIDDLE}",
          share_above_half("arithmetic_lens", "frac_word_gt_numeral", "all")),
    Claim("arithmetic_trajectories", "2 arithmetic",
          "Last-token states of r=o+ pass near the English number words' unembeddings",
          "trajectories",
          f"share of states closer (cosine) to the correct word's row than the numeral's above "
          f"0.5 at some layer {MIDDLE}",
          share_above_half("arithmetic_trajectories", "frac_word_closer", "add")),
    Claim("code_lists", "3 code",
          'At commas of a Python list, " and" is likelier than " or" in the middle layers',
          "code-lists",
          f"share of commas with log p(' and') > log p(' or') above 0.5 at some layer {MIDDLE}",
          share_above_half("code_list_lens", "frac_and_gt_or", None)),
    Claim("code_args", "3 code",
          "Before an argument, the parameter's name is likelier than the argument text",
          "code-args",
          f"share with log p(parameter) > log p(argument) above 0.5 at some layer {MIDDLE}",
          share_above_half("code_args_lens", "frac_param_gt_arg", None)),
    Claim("semantics_similarity", "4 formal semantics",
          "A sentence and its logical form have similar hidden states",
          "semantics",
          f"adjusted cosine (sentence-logical_form) has its CI above 0 at most layers {MIDDLE}",
          ci_above_zero("similarity", "adjusted_cosine", "sentence-logical_form")),
    Claim("semantics_roles", "4 formal semantics",
          "Before a name, the lens names its semantic role (agent/theme/recipient)",
          "semantics",
          f"share with the correct role word likeliest above 0.5 at some layer {MIDDLE}",
          share_above_half("semantics_role_lens", "frac_correct_gt_others", None)),
    Claim("vision", "5 vision",
          "Image positions read as the colour/content words; image and caption states similar",
          "vision", "measured by hublens multimodal --modality image (not run by reproduce)",
          not_applicable("not run here: see hublens multimodal --modality image"),
          media="vision"),
    Claim("vision_patch_labels", "5 vision",
          "Each image position's top-1 lens token names the content of the region it encodes "
          "(per-patch labels), above a shuffled-label baseline",
          "vision-patches",
          "share of labelled image positions whose top-1 token names their region, minus the "
          "same share with the labels permuted within the image (paired per image), has its "
          f"95% CI above 0 at some layer {MIDDLE}",
          ci_above_zero_somewhere("patch_labels", "top1_label_minus_shuffled", "all"),
          media="vision"),
    Claim("vision_caption_nouns", "5 vision",
          "At image positions the lens gives the image's own caption nouns more probability "
          "than the nouns of an unrelated caption",
          "vision-patches",
          "p(own caption nouns) - p(unrelated caption's nouns), averaged over image positions, "
          f"has its 95% CI above 0 at most layers {MIDDLE}",
          ci_above_zero("patch_labels", "p_caption_minus_other", "all"), media="vision"),
    Claim("audio", "6 audio",
          "Audio positions read as the label words; audio and label states similar",
          "audio", "measured by hublens multimodal --modality audio (not run by reproduce)",
          not_applicable("not run here: see hublens multimodal --modality audio"),
          media="audio"),
    Claim("steering", "interventions",
          "Steering the hub with English directions changes other types' outputs as intended",
          "steering", "measured by hublens steer (not run by reproduce --size quick)",
          not_applicable("not run here: see hublens steer and docs/results.md")),
)  # fmt: skip


def judge(claim: Claim, rows: Sequence[Row] | None, n_layers: int, media: set[str]) -> Verdict:
    """The claim's verdict: not applicable without its media, not measured without rows."""
    if claim.media not in media:
        return Verdict("not applicable", f"the model takes no {claim.media} input")
    if rows is None:
        if claim.decide.__qualname__.startswith("not_applicable"):
            return claim.decide([], n_layers)
        return Verdict("not measured", f"{claim.data} was not scanned at this size")
    return claim.decide(rows, n_layers)
