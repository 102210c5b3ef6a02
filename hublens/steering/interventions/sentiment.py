r"""The multilingual sentiment intervention: English-word ActAdd vectors on other languages.

For each target language (Chinese, Spanish, French) two ActAdd vectors are read at
``resid_pre`` of one layer, each from a one-word prompt pair padded to equal length: the
English ``"Good"`` - ``"Bad"`` and the target language's own pair (``"好"``/``"坏"``,
``"Bueno"``/``"Malo"``, ``"Bon"``/``"Mauvais"``). Each is added, times a strength, to the first
positions of neutral target-language prompts during the prompt pass only, and continuations
are SAMPLED (temperature, top-k) under a seeded generator: seed s of prompt p is row s of a
batch sampled under ``torch.manual_seed(base_seed + 1000 * p)`` (see
:func:`hublens.steering.generate.generate_rows`), so every number is reproducible and
seeds are independent samples.

Measures, all under the UNSTEERED model, per continuation:

* ``lexicon``: ``#positive - #negative`` words from our per-language lists;
* ``log_odds``: the model's own sentiment judgement, ``log p(pos) - log p(neg)`` of the first
  tokens of a positive / negative word after a judge suffix appended to prompt + continuation
  (e.g. ``"\\n总的来说，感觉很"`` -> 好 vs 差);
* ``perplexity``: fluency, ``exp`` of the mean negative log-likelihood of the continuation's
  tokens given the prompt;
* ``relevance``: cosine between the mean hidden state (``resid_post`` of the steering layer, BOS
  excluded) over the prompt's positions and over the continuation's positions.

Per (language, vector source, strength, seed) the mean over prompts is one row; ``summary()``
gives mean ± std over seeds. Strength 0 is the same unsteered run for both vector sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from hublens.hooks import ActivationStore, AllPositions, capture_hooks, hook_name
from hublens.steering.checks import (
    DEFAULT_SEEDS,
    check_count,
    check_layer,
    check_seeds,
    check_strengths,
)
from hublens.steering.generate import generate_rows
from hublens.steering.interventions.lexicon import lexicon_score
from hublens.steering.result import SteeringResult, SteeringRow, provenance_of
from hublens.steering.vectors import actadd_vector

NAME = "sentiment"
METRICS = ["lexicon", "log_odds", "perplexity", "relevance"]
#: ActAdd coefficients (ActAdd uses single digits on GPT-2; these models need larger ones).
SENTIMENT_STRENGTHS: tuple[float, ...] = (0.0, 4.0, 8.0)


@dataclass(frozen=True)
class LanguageSetup:
    """What the intervention needs for one language.

    Attributes:
        prompts: Neutral prompt openings, written for hublens.
        pair: The language's own (positive, negative) ActAdd words.
        judge: Suffix after which the model names a sentiment word.
        judge_words: (positive, negative) words read after the judge suffix.
        judge_space: Whether the judge words follow a space.
    """

    prompts: tuple[str, ...]
    pair: tuple[str, str]
    judge: str
    judge_words: tuple[str, str]
    judge_space: bool


LANGUAGES: dict[str, LanguageSetup] = {
    "zh": LanguageSetup(
        prompts=(
            "我昨天看了一部电影，",
            "今天早上我去了公司，",
            "我们周末去了新开的餐厅，",
            "关于这本书，我想说",
            "这次旅行让我觉得",
            "我的新邻居",
        ),
        pair=("好", "坏"),
        judge="\n总的来说，感觉很",
        judge_words=("好", "差"),
        judge_space=False,
    ),
    "es": LanguageSetup(
        prompts=(
            "Ayer vi una película y",
            "Esta mañana fui a la oficina y",
            "El fin de semana fuimos al restaurante nuevo y",
            "Sobre este libro, quiero decir que",
            "Este viaje me hizo sentir",
            "Mi nuevo vecino",
        ),
        pair=("Bueno", "Malo"),
        judge="\nEn general, fue muy",
        judge_words=("bueno", "malo"),
        judge_space=True,
    ),
    "fr": LanguageSetup(
        prompts=(
            "Hier, j'ai vu un film et",
            "Ce matin, je suis allé au bureau et",
            "Ce week-end, nous sommes allés au nouveau restaurant et",
            "À propos de ce livre, je veux dire que",
            "Ce voyage m'a fait sentir",
            "Mon nouveau voisin",
        ),
        pair=("Bon", "Mauvais"),
        judge="\nDans l'ensemble, c'était très",
        judge_words=("bien", "mauvais"),
        judge_space=True,
    ),
}
ENGLISH_PAIR = ("Good", "Bad")


@dataclass(frozen=True)
class _Judge:
    suffix_ids: torch.Tensor
    positive: int
    negative: int


def _judge(model: Any, setup: LanguageSetup) -> _Judge:
    ids = model.tokenizer.encode(setup.judge, add_special_tokens=False)
    first = [
        model.word_token_ids(word, leading_space=setup.judge_space)[0] for word in setup.judge_words
    ]
    if first[0] == first[1]:
        raise ValueError(f"judge words {setup.judge_words} share their first token.")
    return _Judge(torch.tensor(ids, dtype=torch.long), first[0], first[1])


@torch.no_grad()
def score_continuations(
    model: Any,
    prompt_ids: torch.Tensor,
    new_ids: torch.Tensor,
    judge: _Judge,
    *,
    layer: int,
    chunk: int = 8,
) -> dict[str, list[float]]:
    """Log-odds, perplexity and relevance of continuations under the unsteered model.

    Args:
        model: A HubModel.
        prompt_ids: ``(pos,)`` prompt ids (with BOS where the model uses one).
        new_ids: ``(rows, new)`` continuation ids.
        judge: The judge suffix and words.
        layer: Layer whose ``resid_post`` relevance reads.
        chunk: Rows per forward.

    Returns:
        ``{"log_odds": [...], "perplexity": [...], "relevance": [...]}``, one value per row.
    """
    pos, new = prompt_ids.shape[0], new_ids.shape[1]
    start = 1 if model.prepend_bos else 0
    out: dict[str, list[float]] = {"log_odds": [], "perplexity": [], "relevance": []}
    for begin in range(0, new_ids.shape[0], chunk):
        part = new_ids[begin : begin + chunk]
        rows = part.shape[0]
        full = torch.cat(
            [
                prompt_ids.reshape(1, -1).expand(rows, -1),
                part,
                judge.suffix_ids.to(part.device).reshape(1, -1).expand(rows, -1),
            ],
            dim=1,
        )
        store = ActivationStore()
        hooks = capture_hooks(model, store, layers=layer, where=AllPositions())
        keep = full.shape[1] - (pos - 1)  # logits from position pos - 1 on
        with model.hooks(fwd_hooks=hooks):
            logits = model(full, logits_to_keep=keep)
        logp = torch.log_softmax(logits.float(), dim=-1)
        # Continuation token t (at position pos + t) is predicted at position pos + t - 1,
        # which is row t of the kept logits.
        gen_logp = logp[:, :new].gather(-1, part[..., None])[..., 0]
        out["perplexity"] += torch.exp(-gen_logp.mean(-1)).tolist()
        last = logp[:, -1]
        out["log_odds"] += (last[:, judge.positive] - last[:, judge.negative]).tolist()
        hidden = store.tensor(hook_name(layer)).float()
        prompt_mean = hidden[:, start:pos].mean(1)
        cont_mean = hidden[:, pos : pos + new].mean(1)
        out["relevance"] += torch.cosine_similarity(prompt_mean, cont_mean, dim=-1).tolist()
    return out


def run_sentiment_intervention(
    model: Any,
    *,
    layer: int | None = None,
    languages: Sequence[str] = ("zh", "es", "fr"),
    strengths: Iterable[Any] = SENTIMENT_STRENGTHS,
    seeds: Iterable[Any] = DEFAULT_SEEDS,
    n_prompts: int = 3,
    max_new_tokens: int = 16,
    temperature: float = 0.7,
    top_k: int = 40,
    base_seed: int = 0,
    setups: Mapping[str, LanguageSetup] | None = None,
    progress: bool = True,
) -> SteeringResult:
    """English-word vs target-language ActAdd vectors on Chinese, Spanish and French prompts.

    Args:
        model: A HubModel.
        layer: Layer whose ``resid_pre`` the vectors are read at and added to (default: a third
            of the way in, ``n_layers // 3``).
        languages: Target languages (keys of :data:`LANGUAGES` or of ``setups``).
        strengths: ActAdd coefficients; 0 is always run.
        seeds: Seed labels; each is one sampled continuation per prompt and strength.
        n_prompts: Prompts per language (the first n of its list).
        max_new_tokens: Sampled tokens per continuation.
        temperature: Sampling temperature.
        top_k: Sample from the k most likely tokens only.
        base_seed: Seed of the sampler (prompt p uses ``base_seed + 1000 * p``).
        setups: Replace or extend :data:`LANGUAGES`.
        progress: Show a progress bar.

    Returns:
        A :class:`SteeringResult` with groups ``"<lang>/en-vector"`` and
        ``"<lang>/<lang>-vector"``.

    Raises:
        ValueError / TypeError: Bad layer, language, strengths, seeds or sizes.

    Example:
        >>> result = run_sentiment_intervention(  # doctest: +SKIP
        ...     model, languages=["es"], n_prompts=2
        ... )
    """
    grid = check_strengths(strengths)
    seed_list = check_seeds(seeds)
    check_count("n_prompts", n_prompts)
    check_count("max_new_tokens", max_new_tokens, 2)
    table = dict(LANGUAGES, **(setups or {}))
    if isinstance(languages, str):
        languages = [languages]
    if not languages:
        raise ValueError("languages=[]: pass at least one of " + ", ".join(table) + ".")
    for lang in languages:
        if lang not in table:
            raise ValueError(f"languages contains {lang!r}; available: {', '.join(table)}.")
        if n_prompts > len(table[lang].prompts):
            raise ValueError(
                f"n_prompts={n_prompts}: only {len(table[lang].prompts)} prompts for {lang!r}."
            )
    layer = check_layer(model, model.n_layers // 3 if layer is None else layer)
    run_grid = [0.0] + [s for s in grid if s != 0.0]
    steered = run_grid[1:]
    n_seeds = len(seed_list)

    result_rows: list[SteeringRow] = []
    examples: list[str] = []
    vector_meta: dict[str, Any] = {}
    work = [(lang, p) for lang in languages for p in range(n_prompts)]
    per_cell: dict[tuple[str, float, int], dict[str, list[float]]] = {}
    vectors: dict[str, dict[str, Any]] = {}
    for lang in languages:
        setup = table[lang]
        vectors[lang] = {
            "en": actadd_vector(model, *ENGLISH_PAIR, layer=layer, site="resid_pre"),
            lang: actadd_vector(model, *setup.pair, layer=layer, site="resid_pre"),
        }
        vector_meta[lang] = {
            src: {"tokens": v.meta["tokens"], "norm": round(v.norm, 3)}
            for src, v in vectors[lang].items()
        }
    for lang, p in tqdm(work, desc="sentiment", disable=not progress):
        setup = table[lang]
        judge = _judge(model, setup)
        prompt_ids = model.tokenize(setup.prompts[p]).ids[0]
        pair_vectors = vectors[lang]
        k = max(v.vector.shape[0] for v in pair_vectors.values())
        if k > len(prompt_ids):
            raise ValueError(
                f"prompt {setup.prompts[p]!r} has {len(prompt_ids)} tokens, fewer than the "
                f"{k} positions of the ActAdd vectors; use a longer prompt."
            )
        # Rows: (source, strength) conditions, each repeated once per seed.
        conditions: list[tuple[str, float]] = [("", 0.0)]
        conditions += [(src, s) for src in pair_vectors for s in steered]
        blocks = []
        for src, s in conditions:
            block = torch.zeros(k, model.d_model)
            if src:
                vec = pair_vectors[src].vector
                block[: vec.shape[0]] = s * vec
            blocks.append(block)
        rows = torch.stack(blocks).repeat_interleave(n_seeds, dim=0)
        new = generate_rows(
            model,
            prompt_ids,
            rows,
            list(range(k)),
            layer=layer,
            site="resid_pre",
            max_new_tokens=max_new_tokens,
            do_sample=True,
            temperature=temperature,
            top_k=top_k,
            seed=base_seed + 1000 * p,
        )
        scores = score_continuations(model, prompt_ids, new, judge, layer=layer)
        texts = [model.tokenizer.decode(r.tolist(), skip_special_tokens=True) for r in new]
        for c, (src, s) in enumerate(conditions):
            for j, seed in enumerate(seed_list):
                r = c * n_seeds + j
                measured = {
                    "lexicon": float(lexicon_score(texts[r], lang).score),
                    "log_odds": scores["log_odds"][r],
                    "perplexity": scores["perplexity"][r],
                    "relevance": scores["relevance"][r],
                }
                sources = list(pair_vectors) if not src else [src]
                for source in sources:
                    cell = per_cell.setdefault((f"{lang}/{source}-vector", s, seed), {})
                    for metric, value in measured.items():
                        cell.setdefault(metric, []).append(value)
                if p == 0 and j == 0 and (not src or s == steered[-1]):
                    examples.append(
                        f"[{lang}, {src or 'unsteered'}, s={s:g}] {setup.prompts[p]}|{texts[r]}"
                    )
    for (group, s, seed), cell in per_cell.items():
        if s not in grid:
            continue
        for metric in METRICS:
            values = cell[metric]
            result_rows.append(
                SteeringRow(NAME, group, s, seed, metric, sum(values) / len(values), len(values))
            )
    result_rows.sort(key=lambda r: (r.group, r.strength, r.seed))
    return SteeringResult(
        NAME,
        result_rows,
        provenance=provenance_of(model),
        options={
            "layer": layer,
            "site": "resid_pre (read and added at the same layer)",
            "position": "the first k prompt positions (k = padded pair length), prompt pass only",
            "english_pair": list(ENGLISH_PAIR),
            "pairs": {lang: list(table[lang].pair) for lang in languages},
            "vectors": vector_meta,
            "strengths": grid,
            "seeds": seed_list,
            "seed_meaning": "seed s = row s of a batch sampled under torch.manual_seed("
            "base_seed + 1000 * prompt_index + chunk)",
            "base_seed": base_seed,
            "n_prompts": n_prompts,
            "prompts": {lang: list(table[lang].prompts[:n_prompts]) for lang in languages},
            "decoding": f"sampled, temperature {temperature}, top_k {top_k}, "
            f"{max_new_tokens} new tokens",
            "judge": {lang: [table[lang].judge, *table[lang].judge_words] for lang in languages},
            "measures": "lexicon = #pos - #neg words; log_odds = log p(pos) - log p(neg) after "
            "the judge suffix; perplexity of the continuation; relevance = cosine of mean "
            "hidden states of prompt and continuation; all under the unsteered model",
        },
        examples=examples,
        metrics=METRICS,
    )
