"""The paper's vision and audio experiments on a MultimodalModel (data, scans, interventions).

Data are generated here (held-out seeds, never the training keys): solid colours and shapes
with their colour word; espeak-ng animal names in four languages with the English word.
Similarity and logit-lens statistics run through :func:`hublens.semantic_hub_scan`; the two
interventions are:

- colour replacement: a two-colour image (top/bottom); at the top half's image positions
  ``s * (W_U[new colour] - W_U[old colour])`` is added at each layer of a range (replacing the
  states outright, or adding a multiple of the state norm, breaks Gemma's generation: its
  residual stream carries massive activations, norm ~3000 with median |x_i| ~10); success = the
  greedy caption names the new colour and not the old one; control: a random direction of the
  same norm;
- audio steering: at the audio positions, ``s * (W_U[new animal] - W_U[old animal])`` is
  added at each layer of a range; the readouts are the next token after
  the audio (does the model now name the new animal?) and the paper's
  ``P(Yes) / (P(Yes) + P(No))`` after "Is this animal a mammal?".
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens.hook_points import HookPoint

from hublens.adapters.base import MultimodalModel
from hublens.data import ParallelData
from hublens.hooks import hook_name, validate_layers

#: Colours of the paper's lens experiment and its baseline word.
LENS_COLOURS = ("red", "green", "blue", "black")
BASELINE_COLOUR = "white"
#: Colours used in two-colour images.
HALF_COLOURS = ("red", "green", "blue", "yellow", "black")
MAMMAL_PROMPT = " Question: Is this animal a mammal? Answer:"


# ---- data ---------------------------------------------------------------------------------
def vision_similarity_data(mm: MultimodalModel, *, seed: int = 1000) -> ParallelData:
    """One item per colour: a solid image, a shape image, and the colour word."""
    from hublens.adapters.images import COLOURS, SHAPES, shape, solid

    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for k, colour in enumerate(COLOURS):
        s = mm.add_media("image", solid(colour, seed=seed + k), key=f"eval-solid-{colour}")
        bg = "black" if colour in ("white", "yellow", "pink") else "white"
        kind = SHAPES[k % len(SHAPES)]
        h = mm.add_media(
            "image", shape(colour, kind, bg, seed=seed + 100 + k), key=f"eval-shape-{colour}"
        )
        records.append({"id": colour, "caption": colour, "solid": s, "shape": h,
                        "meta": {"label": colour, "shape": kind}})
    rng.shuffle(records)
    return ParallelData.from_records(records, name="colour-images")


def colour_lens_data(mm: MultimodalModel, *, per_colour: int = 5, seed: int = 2000) -> ParallelData:
    """Solid red/green/blue/black images (held out), ``per_colour`` each."""
    from hublens.adapters.images import solid

    records: list[dict[str, Any]] = []
    for colour in LENS_COLOURS:
        for k in range(per_colour):
            marker = mm.add_media("image", solid(colour, seed=seed + 10 * k + len(records)),
                                  key=f"lens-{colour}-{k}")
            records.append({"id": f"{colour}-{k}", "image": marker, "caption": colour,
                            "meta": {"label": colour}})
    return ParallelData.from_records(records, name="solid-colours")


def audio_data(mm: MultimodalModel, *, seed: int = 1000) -> ParallelData:
    """One item per animal: its name spoken in en/fr/de/es (held-out voices) + the word."""
    from hublens.adapters.speech import ANIMALS, LANGUAGES, MAMMALS, spoken_words

    clips = spoken_words(seed=seed, per_word=1, prefix=f"eval{seed}")
    by = {(c.label, c.language): c for c in clips}
    records = []
    for label in ANIMALS:
        record: dict[str, Any] = {"id": label, "label": label}
        for lang in LANGUAGES:
            clip = by[(label, lang)]
            if clip.key in mm.media["audio"]:  # same seed, same clip: reuse it
                record[f"audio_{lang}"] = f"<audio:{clip.key}>"
            else:
                record[f"audio_{lang}"] = mm.add_media(
                    "audio", (clip.waveform, clip.sample_rate), key=clip.key
                )
        record["meta"] = {"label": label, "mammal": label in MAMMALS}
        records.append(record)
    return ParallelData.from_records(records, name="spoken-animals")


# ---- scans --------------------------------------------------------------------------------
def vision_scan(mm: MultimodalModel, *, progress: bool = True) -> Any:
    """Image↔caption similarity and the colour lens, one ScanResult each (concatenated)."""
    from hublens.analyses.modality_lens import ModalityLens
    from hublens.analyses.similarity import Similarity
    from hublens.scan import semantic_hub_scan

    sim = semantic_hub_scan(
        mm, vision_similarity_data(mm),
        analyses=[Similarity(pairs=[("caption", "solid"), ("caption", "shape")], cues={})],
        progress=progress,
    )
    lens = semantic_hub_scan(
        mm, colour_lens_data(mm),
        analyses=[ModalityLens(media="image", baseline_word=BASELINE_COLOUR)],
        progress=progress,
    )
    return sim, lens


def audio_scan(mm: MultimodalModel, *, progress: bool = True) -> Any:
    """Audio↔word similarity per language and the label-word lens."""
    from hublens.analyses.modality_lens import ModalityLens
    from hublens.analyses.similarity import Similarity
    from hublens.scan import semantic_hub_scan

    data = audio_data(mm)
    langs = [t for t in data.types if t.startswith("audio_")]
    sim = semantic_hub_scan(
        mm, data, analyses=[Similarity(pairs=[("label", t) for t in langs], cues={})],
        progress=progress,
    )
    lens = semantic_hub_scan(  # a distinct data name: ScanResult.combine keys scans by it
        mm, data.select(range(len(data)), name="spoken-animals (lens)"),
        analyses=[ModalityLens(name=f"lens_{t}", media=t) for t in langs],
        progress=progress,
    )
    return sim, lens


# ---- interventions ------------------------------------------------------------------------
@dataclass
class DirectionHook:
    """At given positions: replace the state by, or add, a direction scaled to the state norm.

    Attributes:
        direction: ``(d_model,)``, or ``(batch, d_model)`` for one per row; used as unit
            vectors.
        positions: Positions (same for every row).
        mode: ``"replace"``: ``x := |x| * u``; ``"add"``: ``x := x + alpha * |x| * u``.
        alpha: Strength in ``"add"`` mode.
        relative: Scale by the state norm (``alpha * |h| * unit``); False adds
            ``alpha * direction`` as given (the paper's ``s * (W_U[new] - W_U[old])``).
        prompt_len: Act only in passes holding the whole prompt (not on cached decode steps).
    """

    direction: Float[Tensor, "*batch d_model"]
    positions: Sequence[int]
    mode: str = "replace"
    alpha: float = 1.0
    relative: bool = True
    prompt_len: int | None = None

    def __call__(
        self, x: Float[Tensor, "batch pos d_model"], hook: HookPoint
    ) -> Float[Tensor, "batch pos d_model"] | None:
        """Steer the selected positions."""
        if self.prompt_len is not None and x.shape[1] < self.prompt_len:
            return None
        vector = self.direction.to(x.device, x.dtype)
        if vector.ndim == 2:  # one direction per row
            vector = vector[:, None, :]
        pos = list(self.positions)
        out = x.clone()
        h = x[:, pos]
        if not self.relative:
            out[:, pos] = h + self.alpha * vector
            return out
        unit = vector / vector.norm(dim=-1, keepdim=True)
        norm = h.norm(dim=-1, keepdim=True)
        out[:, pos] = norm * unit if self.mode == "replace" else h + self.alpha * norm * unit
        return out


def _unembed_row(mm: MultimodalModel, word: str) -> Tensor:
    return mm.unembedding_weight[mm.word_token_ids(word)[0]].detach().float()


def colour_replacement(
    mm: MultimodalModel,
    *,
    layers: Sequence[int],
    n_images: int = 20,
    seed: int = 3000,
    max_new_tokens: int = 5,
    mode: str = "add",
    alpha: float = 1.0,
    relative: bool = False,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Steer the top half's image states along ``W_U[new] - W_U[old]``; one record per image.

    ``mode="replace"`` writes ``|h| * unit(W_U[new] - W_U[old])`` over the states (the paper's
    wording); ``mode="add"`` adds ``alpha * |h| * unit(...)`` to them.

    Each record: colours, the caption without and with the intervention (and with a random
    direction of the same norm as a control), and success flags.
    """
    from hublens.adapters.images import halves

    chosen = validate_layers(mm, list(layers))
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    out = []
    for k in tqdm(range(n_images), desc="colour replacement", disable=not progress):
        top, bottom = rng.sample(HALF_COLOURS, 2)
        new = rng.choice([c for c in HALF_COLOURS if c not in (top, bottom)])
        key = f"swap{seed}-{k}"
        if key in mm.media["image"]:  # same seed, same image: reuse it
            marker = f"<image:{key}>"
        else:
            marker = mm.add_media("image", halves(top, bottom, seed=seed + k), key=key)
        batch = mm.tokenize([marker])
        span = batch.spans[0][0]
        grid = int(round((span.stop - span.start) ** 0.5))
        top_positions = [span.start + i for i in range(grid)]  # first row of patches
        prompt_len = batch.ids.shape[1]
        direction = _unembed_row(mm, new) - _unembed_row(mm, top)
        random_dir = torch.randn(direction.shape, generator=generator)
        random_dir = random_dir / random_dir.norm() * direction.norm()  # same norm: a control

        def caption(
            vector: Tensor | None, marker: str = marker, top_positions: list[int] = top_positions,
            prompt_len: int = prompt_len,
        ) -> str:
            hooks = []
            if vector is not None:
                hook = DirectionHook(
                    vector, top_positions, mode, alpha=alpha, relative=relative,
                    prompt_len=prompt_len,
                )
                hooks = [(hook_name(layer), hook) for layer in chosen]
            with mm.hooks(fwd_hooks=hooks):
                return mm.generate_text(marker, max_new_tokens=max_new_tokens).strip().lower()

        plain, steered, control = caption(None), caption(direction), caption(random_dir)

        def words(text: str) -> set[str]:
            return set(text.replace(",", " ").replace(".", " ").split())

        out.append({
            "top": top, "bottom": bottom, "new": new, "caption": plain, "steered": steered,
            "control": control,
            "caption_names_top": top in words(plain),
            "success": new in words(steered) and top not in words(steered),
            "control_success": new in words(control) and top not in words(control),
            "plain_names_new": new in words(plain),
        })
    return out


def _next_token(
    mm: MultimodalModel, texts: Sequence[str], hooks_for: Any = None
) -> Float[Tensor, "batch d_vocab"]:
    """Next-token log-probs after each text (with optional hooks built from the batch)."""
    batch = mm.tokenize(list(texts))
    hooks = hooks_for(batch) if hooks_for is not None else []
    with torch.no_grad(), mm.hooks(fwd_hooks=hooks):
        logits = mm(batch)
    last = logits[torch.arange(len(texts)), batch.lengths - 1].float()
    return last.log_softmax(-1)


def yes_probability(
    mm: MultimodalModel, texts: Sequence[str], *, hooks_for: Any = None
) -> list[float]:
    """``P(Yes) / (P(Yes) + P(No))`` of the next token, per text (" Yes"/" No" first tokens)."""
    yes, no = mm.word_token_ids("Yes")[0], mm.word_token_ids("No")[0]
    logp = _next_token(mm, texts, hooks_for)
    return logp[:, [yes, no]].softmax(-1)[:, 0].tolist()


def audio_steering(
    mm: MultimodalModel,
    data: ParallelData,
    *,
    layers: Sequence[int],
    alphas: Sequence[float] = (20.0,),
    languages: Sequence[str] = ("en",),
    seed: int = 4000,
) -> list[dict[str, Any]]:
    """Steer each clip's audio positions toward another animal; read the caption and P(Yes).

    For each clip (label ``old``) a random other label ``new`` is drawn;
    ``alpha * (W_U[new] - W_U[old])`` is added at the audio positions at every chosen layer
    (and, as a control, a random direction of the same norm). Readouts, right after the audio
    (where training taught the model to name the animal): the top-1 next token and the
    log-probs of ``new`` and ``old``; and ``P(Yes)/(P(Yes)+P(No))`` after "Is this animal a
    mammal?" for the audio and for the words themselves as text (the LM's own knowledge).
    """
    from hublens.adapters.speech import MAMMALS

    chosen = validate_layers(mm, list(layers))
    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    labels = [str(x) for x in data.meta_column("label")]
    news = [rng.choice([x for x in labels if x != label]) for label in labels]
    old_ids = [mm.word_token_ids(x)[0] for x in labels]
    new_ids = [mm.word_token_ids(x)[0] for x in news]
    directions = torch.stack(
        [_unembed_row(mm, n) - _unembed_row(mm, o) for n, o in zip(news, labels, strict=True)]
    )
    randoms = torch.randn(directions.shape, generator=generator)
    randoms = randoms / randoms.norm(dim=-1, keepdim=True) * directions.norm(dim=-1, keepdim=True)
    rows = torch.arange(len(labels))
    text_yes = yes_probability(mm, [x + MAMMAL_PROMPT for x in labels])
    records = []
    for lang in languages:
        markers = data.column(f"audio_{lang}")
        positions = mm.tokenize([markers[0]]).positions(0)
        for marker in markers:
            if mm.tokenize([marker]).positions(0) != positions:
                raise ValueError("audio clips must have equal spans to be steered as one batch")

        def hooks(vectors: Tensor | None, alpha: float, positions: list[int] = positions) -> Any:
            if vectors is None:
                return None
            hook = DirectionHook(vectors, positions, "add", alpha=alpha, relative=False)
            return lambda batch: [(hook_name(layer), hook) for layer in chosen]

        for alpha in [0.0, *alphas]:
            conditions = {"steered": directions, "control": randoms} if alpha else {"plain": None}
            for condition, vectors in conditions.items():
                logp = _next_token(mm, markers, hooks(vectors, alpha))
                yes = yes_probability(
                    mm, [m + MAMMAL_PROMPT for m in markers], hooks_for=hooks(vectors, alpha)
                )
                top = logp.argmax(-1)
                for i, label in enumerate(labels):
                    records.append({
                        "language": lang, "label": label, "new": news[i], "alpha": alpha,
                        "condition": condition, "mammal": label in MAMMALS,
                        "new_mammal": news[i] in MAMMALS,
                        "top1_is_old": bool(top[i] == old_ids[i]),
                        "top1_is_new": bool(top[i] == new_ids[i]),
                        "logp_old": float(logp[rows[i], old_ids[i]]),
                        "logp_new": float(logp[rows[i], new_ids[i]]),
                        "p_yes": yes[i], "p_yes_text_word": text_yes[i],
                    })
    return records
