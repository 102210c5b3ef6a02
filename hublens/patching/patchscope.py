"""Patchscope readout: decode a hidden state by patching it into an identity prompt.

A state read at layer l of a *source* prompt (its ``resid_post`` at ``position``, the last token
by default) is written over the placeholder of an identity prompt (Ghandeharioun et al., 2024,
"Patchscopes")::

    cat → cat; 1135 → 1135; hello → hello; ? →

at layer l (or at one fixed layer ``into``), and the identity prompt's next-token distribution
at its last token is read: the model "repeats" what the patched state stands for. It is a lens
that needs no training. Per layer and reading (a word per source prompt), over items (mean and
95% t-interval, as the rest of hublens):

* ``p_<reading>``: probability of the reading's first token (with a leading space by default:
  the answer follows ``→ ``);
* ``top1_<reading>``: share of items whose reading's token is the most probable next token.

Rows ``patchscope/patch`` carry the patched readout, ``patchscope/none`` the identity prompt
unpatched (the same numbers at every layer): a reading the identity prompt alone produces is
no evidence. With same-layer patching the last layer cannot change the output unless the
placeholder is the identity prompt's last token (no later layer reads the placeholder), so
its row equals ``none`` there.

The patch is :func:`hublens.steering.hook.patch_hooks` (the one position-writing hook, replace
mode) through :class:`~hublens.patching.forwards.PatchTarget` (the clean identity prefix is
cached; each patched run recomputes only the placeholder and what follows).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hublens.analysis import Row
from hublens.hooks.names import validate_layers
from hublens.patching.forwards import PatchTarget, check_position, read_states, resolve_positions
from hublens.results import ScanResult
from hublens.stats import MeanStat

__all__ = [
    "IDENTITY_PROMPT",
    "PATCHSCOPE",
    "PatchscopeReadout",
    "patchscope",
    "patchscope_readout",
    "placeholder_position",
    "reading_token_ids",
    "target_layers",
]

#: The default identity prompt; ``?`` is the placeholder the state is written over.
IDENTITY_PROMPT = "cat → cat; 1135 → 1135; hello → hello; ? →"
#: Analysis-name prefix of the rows.
PATCHSCOPE = "patchscope"


def placeholder_position(model: Any, identity: str, placeholder: str = "?") -> int:
    """The token position (BOS included) of ``placeholder`` in ``identity``.

    The placeholder must occur once and be a token of its own (surrounding whitespace allowed,
    e.g. the ``" ?"`` token), so that writing one state over one position replaces exactly it.
    Tokenizes only (no forward).

    Raises:
        ValueError: Empty or absent placeholder, more than one, or one that shares a token
            with neighbouring text; the message says what to change.
        TypeError: The tokenizer cannot report character offsets (not a fast tokenizer).
    """
    if not isinstance(placeholder, str) or not placeholder.strip():
        raise ValueError(f"placeholder={placeholder!r}: pass a non-blank string such as '?'.")
    if not isinstance(identity, str) or identity.count(placeholder) != 1:
        count = identity.count(placeholder) if isinstance(identity, str) else 0
        raise ValueError(
            f"identity={identity!r} holds placeholder={placeholder!r} {count} times; it must "
            "hold it exactly once (the position the state is written over)."
        )
    model.encode_rows([identity], describe=lambda i: "identity")  # empty / too long refused
    tokenizer = model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(
            "placeholder_position needs a fast tokenizer (character offsets); pass "
            "position=... to patchscope instead."
        )
    encoded = tokenizer(identity, add_special_tokens=False, return_offsets_mapping=True)
    start = identity.index(placeholder)
    end = start + len(placeholder)
    hits = [i for i, (s, e) in enumerate(encoded["offset_mapping"]) if s < end and e > start]
    spans = [identity[s:e] for s, e in encoded["offset_mapping"]]
    if len(hits) != 1 or spans[hits[0]].strip() != placeholder.strip():
        pieces = [spans[i] for i in hits]
        raise ValueError(
            f"placeholder={placeholder!r} is tokenized as {pieces!r} in identity={identity!r}; "
            "it must be one token of its own: put a space or punctuation around it, or pick "
            "another placeholder."
        )
    return hits[0] + (1 if model.prepend_bos else 0)


def reading_token_ids(
    model: Any, readings: Mapping[str, Sequence[str]], n: int, *, leading_space: bool = True
) -> tuple[list[str], Int[Tensor, "n n_readings"]]:
    """The first token of each reading's word, per item.

    Args:
        model: A HubModel.
        readings: Reading name -> one word per item (``n`` of them).
        n: The number of items.
        leading_space: Tokenize each word as following a space (the identity prompt's answer
            follows ``"→ "``).

    Returns:
        The reading names and the ``(n, len(readings))`` token ids.

    Raises:
        ValueError: A bad name, a list of the wrong length, or a word with no token.
    """
    names = list(readings)
    columns = []
    for name in names:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"targets has the key {name!r}; names must be identifiers.")
        words = readings[name]
        if isinstance(words, str) or len(words) != n:
            size = "a string" if isinstance(words, str) else f"{len(words)} words"
            raise ValueError(f"targets[{name!r}] is {size}; pass one word per prompt ({n}).")
        column = []
        for i, word in enumerate(words):
            ok = isinstance(word, str) and word and word.strip() == word
            ids = model.word_token_ids(word, leading_space=leading_space) if ok else []
            if not ids:
                raise ValueError(
                    f"targets[{name!r}][{i}]={word!r} yields no token for this model; pass a "
                    "non-empty word without surrounding whitespace."
                )
            column.append(int(ids[0]))
        columns.append(column)
    return names, torch.tensor(columns, dtype=torch.long).T.reshape(n, len(names))


class PatchscopeReadout:
    """Per-item patchscope log-probs, per layer (the numbers under :func:`patchscope`).

    Attributes:
        layers: The source layers read.
        into: The layer patched into per source layer (equal to ``layers`` for same-layer).
        logprobs: ``(layer, n, n_readings)`` patched log-probs of the readings.
        clean: ``(n, n_readings)`` log-probs of the identity prompt unpatched.
        top_logprobs: ``(layer, n, top_k)`` the most probable next tokens' log-probs.
        top_ids: ``(layer, n, top_k)`` their ids.
        clean_top_ids: ``(n, top_k)`` the unpatched identity prompt's top tokens.
    """

    def __init__(
        self,
        layers: list[int],
        into: list[int],
        logprobs: Float[Tensor, "layer n n_readings"],
        clean: Float[Tensor, "n n_readings"],
        top_logprobs: Float[Tensor, "layer n top_k"],
        top_ids: Int[Tensor, "layer n top_k"],
        clean_top_ids: Int[Tensor, "n top_k"],
    ) -> None:
        self.layers, self.into = layers, into
        self.logprobs, self.clean = logprobs, clean
        self.top_logprobs, self.top_ids = top_logprobs, top_ids
        self.clean_top_ids = clean_top_ids


def target_layers(model: Any, layers: Any, into: Any) -> tuple[list[int], list[int]]:
    """The source layers and, per source layer, the layer patched into (``into`` or itself).

    Raises:
        ValueError / TypeError: A layer out of range; ``into`` not one layer of the model.
    """
    chosen = validate_layers(model, layers)
    if into is None:
        return chosen, chosen
    if isinstance(into, (bool, list, tuple)):
        raise ValueError(f"into={into!r}: pass one layer (an int), or None for the same layer.")
    try:
        fixed = validate_layers(model, into)
    except (TypeError, ValueError):
        raise ValueError(
            f"into={into!r} is not a layer of this model (0..{model.n_layers - 1}); pass one "
            "of those, or None to patch each state into the layer it came from."
        ) from None
    return chosen, fixed * len(chosen)


def _checked(model: Any, prompts: Sequence[str], layers: Any, into: Any) -> tuple[list, list]:
    if isinstance(prompts, str) or not len(prompts):
        raise ValueError("prompts: pass a non-empty list of source prompts (not one string).")
    return target_layers(model, layers, into)


@torch.no_grad()
def patchscope_readout(
    model: Any,
    prompts: Sequence[str] | None,
    token_ids: Int[Tensor, "n n_readings"],
    *,
    layers: Any = None,
    states: Float[Tensor, "layer n d_model"] | None = None,
    identity: str = IDENTITY_PROMPT,
    placeholder: str = "?",
    position: int = -1,
    into: int | None = None,
    top_k: int = 5,
    batch_size: int = 16,
    max_rows: int = 256,
) -> PatchscopeReadout:
    """Patch each prompt's state at ``position`` into ``identity`` per layer; read log-probs.

    Every input is checked before the first forward.

    Args:
        model: A HubModel.
        prompts: Source prompts (None when ``states`` are given).
        token_ids: ``(n, n_readings)`` token ids to read per prompt.
        layers: Source layers (None: all).
        states: ``(len(layers), n, d_model)`` hidden states to decode instead of reading them
            from prompts (e.g. a mean of states, or a vector of your own).
        identity: The identity prompt holding ``placeholder`` once.
        placeholder: The text whose token the state replaces.
        position: Source position, counted from the end when negative (-1: the last token).
        into: Patch every layer's state into this one layer (None: the same layer).
        top_k: Most probable next tokens to keep per item and layer.
        batch_size: Prompts per forward.
        max_rows: Most rows one patched forward holds.

    Returns:
        The :class:`PatchscopeReadout`.

    Raises:
        ValueError / TypeError: See :func:`placeholder_position`, a layer out of range, a
            prompt without ``position``, a wrong ``token_ids`` shape.
    """
    if (prompts is None) == (states is None):
        raise ValueError("pass either prompts (states are read from them) or states, not both.")
    if prompts is not None:
        chosen, targets = _checked(model, prompts, layers, into)
        n = len(prompts)
    else:
        assert states is not None
        chosen, targets = target_layers(model, layers, into)
        if states.ndim != 3 or states.shape[0] != len(chosen) or states.shape[2] != model.d_model:
            raise ValueError(
                f"states has shape {tuple(states.shape)}; pass (len(layers), n, d_model) = "
                f"({len(chosen)}, n, {model.d_model})."
            )
        n = states.shape[1]
    check_position(position)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k={top_k!r}: pass an int >= 1.")
    slot = placeholder_position(model, identity, placeholder)
    if not isinstance(token_ids, Tensor) or token_ids.ndim != 2 or token_ids.shape[0] != n:
        shape = tuple(token_ids.shape) if isinstance(token_ids, Tensor) else token_ids
        raise ValueError(f"token_ids has shape {shape}; pass (n_prompts, n_readings) = ({n}, k).")
    if states is None:
        assert prompts is not None
        src_pos = resolve_positions(model, prompts, position, "prompts")
        # -------------------------------------------------------- forwards (all checked)
        states = read_states(model, prompts, src_pos, chosen, batch_size=batch_size)
    target = PatchTarget(model, [identity] * n, torch.full((n,), slot), batch_size=batch_size)
    runs: list[tuple[Tensor, list[int]] | None] = [None]
    runs += [(states[[j]], [layer]) for j, layer in enumerate(targets)]
    out = target.top_runs(runs, token_ids.long(), top_k, max_rows=max_rows)
    clean, _, clean_top = out[0]
    logps, top_values, top_ids = (torch.stack([run[k] for run in out[1:]]) for k in range(3))
    return PatchscopeReadout(chosen, targets, logps, clean, top_values, top_ids, clean_top)


def _metrics(logp: Tensor, top_ids: Tensor, token_ids: Tensor) -> Tensor:
    """Per item: each reading's probability, then whether it is the top token."""
    top1 = (token_ids == top_ids[:, :1]).double()
    return torch.cat([logp.double().exp(), top1], dim=1)


def patchscope(
    model: Any,
    prompts: Sequence[str],
    *,
    targets: Mapping[str, Sequence[str]],
    layers: Any = None,
    identity: str = IDENTITY_PROMPT,
    placeholder: str = "?",
    position: int = -1,
    into: int | None = None,
    leading_space: bool = True,
    top_k: int = 5,
    group: str = "",
    batch_size: int = 16,
    n_examples: int = 3,
) -> ScanResult:
    """The patchscope readout per layer as tidy rows with 95% CIs over prompts.

    Args:
        model: A HubModel.
        prompts: Source prompts; each one's state at ``position`` is decoded.
        targets: Reading name -> one word per prompt (e.g. ``{"en": [...], "zh": [...]}``).
        layers: Source layers (None: all).
        identity: The identity prompt (holding ``placeholder`` once).
        placeholder: The text whose token the state replaces.
        position: Source position, counted from the end when negative.
        into: Patch every state into this one layer (None: the same layer it came from).
        leading_space: Read each word's token as following a space.
        top_k: Top next tokens per item and layer (shown for the first prompts).
        group: The rows' group label.
        batch_size: Prompts per forward.
        n_examples: Prompts whose top tokens per layer the result's examples show.

    Returns:
        A :class:`~hublens.results.ScanResult` with rows ``patchscope/patch`` and
        ``patchscope/none``, metrics ``p_<reading>`` and ``top1_<reading>``.

    Raises:
        ValueError / TypeError: Any bad input, before the first forward.

    Example:
        >>> result = patchscope(model, ['Français: "chat" - English: "'],
        ...                     targets={"en": ["cat"], "fr": ["chat"]})  # doctest: +SKIP
        >>> result.table()  # doctest: +SKIP
    """
    started = time.perf_counter()
    if isinstance(prompts, str):
        raise ValueError("prompts: pass a list of source prompts (not one string).")
    if not isinstance(targets, Mapping) or not targets:
        raise ValueError('targets: pass {"name": [one word per prompt], ...} (at least one).')
    names, ids = reading_token_ids(model, targets, len(prompts), leading_space=leading_space)
    readout = patchscope_readout(
        model,
        prompts,
        ids,
        layers=layers,
        identity=identity,
        placeholder=placeholder,
        position=position,
        into=into,
        top_k=top_k,
        batch_size=batch_size,
    )
    metrics = [f"p_{x}" for x in names] + [f"top1_{x}" for x in names]
    rows = []
    none = MeanStat()
    none.add(_metrics(readout.clean, readout.clean_top_ids, ids))
    for j, layer in enumerate(readout.layers):
        stat = MeanStat()
        stat.add(_metrics(readout.logprobs[j], readout.top_ids[j], ids))
        for name, st in ((f"{PATCHSCOPE}/patch", stat), (f"{PATCHSCOPE}/none", none)):
            for metric, m, lo, hi in zip(metrics, *st.ci(), strict=True):
                rows.append(Row(name, layer, metric, group, float(m), float(lo), float(hi), st.n))
    options = {
        "identity": identity,
        "placeholder": placeholder,
        "position": position,
        "into": "same layer" if into is None else into,
        "readings": names,
        "leading_space": leading_space,
        "token_policy": "first token of each word" + (" after a space" if leading_space else ""),
        "n_prompts": len(prompts),
    }
    examples = _examples(model, prompts, readout, n_examples)
    provenance = {
        "model": model.provenance.to_dict(),
        "prepend_bos": model.prepend_bos,
        "layers": readout.layers,
        "batch_size": batch_size,
        "seconds": round(time.perf_counter() - started, 1),
    }
    analyses = [f"{PATCHSCOPE}/patch", f"{PATCHSCOPE}/none"]
    return ScanResult(
        rows,
        provenance,
        {a: dict(options, condition=a.split("/")[1]) for a in analyses},
        {a: examples for a in analyses},
    )


def _examples(model: Any, prompts: Sequence[str], readout: PatchscopeReadout, n: int) -> list:
    """For the first ``n`` prompts: the top next token per layer, with its probability."""
    out = []
    decode = model.tokenizer.decode
    for i in range(min(n, len(prompts))):
        cells = [
            f"L{layer}: {decode([int(readout.top_ids[j, i, 0])])!r} "
            f"{float(readout.top_logprobs[j, i, 0].exp()):.2f}"
            for j, layer in enumerate(readout.layers)
        ]
        out.append(f"{prompts[i].splitlines()[-1]!r} -> " + "; ".join(cells))
    return out
