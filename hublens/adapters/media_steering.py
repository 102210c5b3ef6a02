"""The paper's steering at image and audio positions (colour replacement, audio steering).

Both add ``s * (W_U[new] - W_U[old])`` at media positions through the one steering hook
(:func:`hublens.steering.direction_hook`):

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
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from hublens.adapters.base import MultimodalModel
from hublens.data import ParallelData
from hublens.hooks import hook_name, validate_layers
from hublens.steering.hook import direction_hook

#: Colours used in two-colour images.
HALF_COLOURS = ("red", "green", "blue", "yellow", "black")
MAMMAL_PROMPT = " Question: Is this animal a mammal? Answer:"


def _unembed_row(mm: MultimodalModel, word: str) -> Tensor:
    return mm.unembedding_weight[mm.word_token_ids(word)[0]].detach().float()


def colour_replacement(
    mm: MultimodalModel,
    *,
    layers: Sequence[int],
    n_images: int = 20,
    seed: int = 3000,
    max_new_tokens: int = 5,
    mode: Literal["add", "replace"] = "add",
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
            vector: Tensor | None,
            marker: str = marker,
            top_positions: list[int] = top_positions,
            prompt_len: int = prompt_len,
        ) -> str:
            hooks = []
            if vector is not None:
                hook = direction_hook(
                    vector,
                    top_positions,
                    mode,
                    alpha=alpha,
                    relative=relative,
                    prompt_len=prompt_len,
                )
                hooks = [(hook_name(layer), hook) for layer in chosen]
            with mm.hooks(fwd_hooks=hooks):
                return mm.generate_text(marker, max_new_tokens=max_new_tokens).strip().lower()

        plain, steered, control = caption(None), caption(direction), caption(random_dir)

        def words(text: str) -> set[str]:
            return set(text.replace(",", " ").replace(".", " ").split())

        out.append(
            {
                "top": top,
                "bottom": bottom,
                "new": new,
                "caption": plain,
                "steered": steered,
                "control": control,
                "caption_names_top": top in words(plain),
                "success": new in words(steered) and top not in words(steered),
                "control_success": new in words(control) and top not in words(control),
                "plain_names_new": new in words(plain),
            }
        )
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
            hook = direction_hook(vectors, positions, "add", alpha=alpha, relative=False)
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
                    records.append(
                        {
                            "language": lang,
                            "label": label,
                            "new": news[i],
                            "alpha": alpha,
                            "condition": condition,
                            "mammal": label in MAMMALS,
                            "new_mammal": news[i] in MAMMALS,
                            "top1_is_old": bool(top[i] == old_ids[i]),
                            "top1_is_new": bool(top[i] == new_ids[i]),
                            "logp_old": float(logp[rows[i], old_ids[i]]),
                            "logp_new": float(logp[rows[i], new_ids[i]]),
                            "p_yes": yes[i],
                            "p_yes_text_word": text_yes[i],
                        }
                    )
    return records
