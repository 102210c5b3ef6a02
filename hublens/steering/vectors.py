"""Steering vectors: ActAdd, unembedding difference, mean difference.

Three ways to build a direction in the residual stream, each returned as a
:class:`SteeringVector` that remembers the layer and site it belongs to:

* :func:`actadd_vector`: the hidden states of a prompt pair at every position, the shorter
  prompt padded to the longer one's length (Turner et al.'s ActAdd, ``resid_pre`` by default).
* :func:`unembedding_vector`: ``W_U[a] - W_U[b]`` for two words (their first tokens).
* :func:`mean_difference_vector`: mean last-token hidden state of one prompt set minus another's.

:func:`hublens.steer` (:mod:`hublens.steering.attach`) attaches one for a ``with`` block.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, SupportsIndex

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hublens.hooks.capture import ActivationStore, capture_hooks
from hublens.hooks.names import Site, hook_name
from hublens.hooks.positions import AllPositions, LastToken, Selector
from hublens.steering.checks import check_layer, number

Normalize = Literal["unit"] | None


@dataclass(frozen=True)
class SteeringVector:
    """A steering direction and where it belongs.

    Attributes:
        vector: ``(d_model,)``, or ``(k, d_model)`` for ActAdd (row i goes to prompt position i).
        layer: The layer it was read at (and is added at by default).
        site: The residual-stream site (``resid_pre`` / ``resid_mid`` / ``resid_post``).
        kind: ``"actadd"``, ``"unembedding"``, ``"mean_difference"`` or ``"custom"``.
        meta: What it was built from (prompts, tokens, norms), for provenance.
    """

    vector: Float[Tensor, "*k d_model"]
    layer: int
    site: Site = "resid_post"
    kind: str = "custom"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def positions(self) -> int | None:
        """Number of leading prompt positions an ActAdd vector covers (None for one vector)."""
        return int(self.vector.shape[0]) if self.vector.ndim == 2 else None

    @property
    def norm(self) -> float:
        """L2 norm of the vector (all rows together)."""
        return float(self.vector.float().norm())

    def scaled(self, factor: float) -> SteeringVector:
        """The same vector times ``factor`` (a copy)."""
        return replace(self, vector=self.vector * number("factor", factor))


def _normalize(vector: Tensor, normalize: Normalize) -> Tensor:
    if normalize is None:
        return vector
    if normalize != "unit":
        raise ValueError(f"normalize={normalize!r}: choose 'unit' or None.")
    norm = vector.float().norm()
    if float(norm) == 0.0:
        raise ValueError("the vector is zero, so it cannot be normalised; pick different inputs.")
    return vector / norm.to(vector.dtype)


def _prompts(name: str, prompts: Any) -> list[str]:
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ValueError(f"{name}=[]: the prompt set is empty; pass at least one prompt.")
    for i, text in enumerate(prompts):
        if not isinstance(text, str) or not text:
            raise ValueError(f"{name}[{i}]={text!r}: every prompt must be a non-empty string.")
    return prompts


def _space_id(model: Any) -> int:
    ids = model.tokenizer.encode(" ", add_special_tokens=False)
    if len(ids) == 1:
        return int(ids[0])
    pad = model.tokenizer.pad_token_id
    return int(pad if pad is not None else model.tokenizer.eos_token_id)


@torch.no_grad()
def hidden_at(
    model: Any, ids: Int[Tensor, "batch pos"], layer: int, site: Site, where: Selector
) -> Float[Tensor, "..."]:
    """The selected rows of one residual-stream site for a batch of ids, in fp32.

    Example:
        >>> ids = model.tokenize("Hi").ids  # doctest: +SKIP
        >>> h = hidden_at(model, ids, 3, "resid_post", LastToken())  # doctest: +SKIP
    """
    store = ActivationStore()
    with model.hooks(fwd_hooks=capture_hooks(model, store, layers=layer, site=site, where=where)):
        model(ids)
    return store.tensor(hook_name(layer, site)).float()


def actadd_vector(
    model: Any,
    positive: str,
    negative: str,
    *,
    layer: SupportsIndex,
    site: Site = "resid_pre",
    normalize: Normalize = None,
) -> SteeringVector:
    """ActAdd: ``h(positive) - h(negative)`` at every position, prompts padded to equal length.

    Both prompts are tokenized with the model's BOS policy; the shorter one is padded on the
    right with the space token (the pad token if a space is not one token), as in ActAdd. The
    result has one row per position; add it to the first positions of a prompt.

    Args:
        model: A HubModel.
        positive: The prompt to steer towards, e.g. ``"Good"``.
        negative: The prompt to steer away from, e.g. ``"Bad"``.
        layer: The layer to read (and add) at.
        site: Residual-stream site; ``resid_pre`` as in the paper.
        normalize: ``"unit"`` scales the whole ``(k, d_model)`` vector to norm 1.

    Returns:
        A ``(k, d_model)`` steering vector.

    Raises:
        ValueError: Empty prompt, layer out of range.

    Example:
        >>> v = actadd_vector(model, "Good", "Bad", layer=6)  # doctest: +SKIP
        >>> with hublens.steer(model, v, scale=4.0):  # doctest: +SKIP
        ...     model.generate("I think", max_new_tokens=10, do_sample=False)
    """
    for name, text in (("positive", positive), ("negative", negative)):
        _prompts(name, [text])
    layer = check_layer(model, layer)
    rows = [model.tokenize(text).ids[0] for text in (positive, negative)]
    width = max(len(r) for r in rows)
    pad = _space_id(model)
    ids = torch.full((2, width), pad, dtype=torch.long, device=rows[0].device)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    hidden = hidden_at(model, ids, layer, site, AllPositions())
    vector = _normalize(hidden[0] - hidden[1], normalize)
    meta = {
        "positive": positive,
        "negative": negative,
        "tokens": [model.tokenizer.convert_ids_to_tokens(r.tolist()) for r in ids],
        "normalize": normalize,
    }
    return SteeringVector(vector, layer, site, "actadd", meta)


def unembedding_vector(
    model: Any,
    towards: str,
    away: str,
    *,
    layer: SupportsIndex,
    site: Site = "resid_post",
    leading_space: bool = True,
    normalize: Normalize = None,
) -> SteeringVector:
    """``W_U[towards] - W_U[away]``: the difference of two unembedding rows.

    Each word maps to ONE token: the first token of the word as it reads mid-text
    (:meth:`HubModel.word_token_ids`); the tokens are recorded in ``meta``.

    Args:
        model: A HubModel.
        towards: Word whose logit the vector raises, e.g. ``"start"``.
        away: Word whose logit it lowers, e.g. ``"end"``.
        layer: The layer to add it at.
        site: Residual-stream site.
        leading_space: Read the words as following a space (False after ``(`` in code).
        normalize: ``"unit"`` for norm 1.

    Returns:
        A ``(d_model,)`` steering vector.

    Raises:
        ValueError: Empty word, both words share their first token, layer out of range.

    Example:
        >>> v = unembedding_vector(model, "start", "end", layer=9,  # doctest: +SKIP
        ...                        leading_space=False, normalize="unit")
    """
    layer = check_layer(model, layer)
    ids = []
    for name, word in (("towards", towards), ("away", away)):
        if not isinstance(word, str) or not word.strip():
            raise ValueError(f"{name}={word!r}: pass a non-empty word.")
        tokens = model.word_token_ids(word, leading_space=leading_space)
        if not tokens:
            raise ValueError(f"{name}={word!r} yields no token.")
        ids.append(tokens[0])
    if ids[0] == ids[1]:
        raise ValueError(
            f"towards={towards!r} and away={away!r} share their first token {ids[0]}, so the "
            "difference is zero; pick words that start with different tokens."
        )
    weight = model.unembedding_weight
    vector = _normalize((weight[ids[0]] - weight[ids[1]]).detach().float().clone(), normalize)
    meta = {
        "towards": towards,
        "away": away,
        "token_ids": ids,
        "tokens": model.tokenizer.convert_ids_to_tokens(ids),
        "leading_space": leading_space,
        "normalize": normalize,
    }
    return SteeringVector(vector, layer, site, "unembedding", meta)


def mean_difference_vector(
    model: Any,
    prompts_a: Sequence[str],
    prompts_b: Sequence[str],
    *,
    layer: SupportsIndex,
    site: Site = "resid_post",
    normalize: Normalize = None,
    batch_size: int = 16,
) -> SteeringVector:
    """Mean last-token hidden state of ``prompts_a`` minus that of ``prompts_b``.

    Args:
        model: A HubModel.
        prompts_a: Prompts of the target concept.
        prompts_b: Prompts of the contrast concept.
        layer: The layer to read (and add) at.
        site: Residual-stream site.
        normalize: ``"unit"`` for norm 1.
        batch_size: Prompts per forward pass (right-padded: results do not depend on it).

    Returns:
        A ``(d_model,)`` steering vector.

    Raises:
        ValueError: An empty prompt set or prompt, layer out of range.

    Example:
        >>> v = mean_difference_vector(  # doctest: +SKIP
        ...     model, ["I love it"], ["I hate it"], layer=6
        ... )
    """
    sets = [_prompts("prompts_a", prompts_a), _prompts("prompts_b", prompts_b)]
    layer = check_layer(model, layer)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: pass a positive int.")
    means = []
    for prompts in sets:
        total = None
        for start in range(0, len(prompts), batch_size):
            batch = model.tokenize(prompts[start : start + batch_size])
            rows = hidden_at(model, batch.ids, layer, site, LastToken(batch.lengths)).sum(0)
            total = rows if total is None else total + rows
        assert total is not None
        means.append(total / len(prompts))
    vector = _normalize(means[0] - means[1], normalize)
    meta = {"n_a": len(sets[0]), "n_b": len(sets[1]), "normalize": normalize}
    return SteeringVector(vector, layer, site, "mean_difference", meta)
