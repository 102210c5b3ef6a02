"""One prompt through the logit lens (Wendler et al.): which language does each layer 'think' in?

A single-prompt tool (the ``hublens lens`` command), not a streaming analysis: for data sets use
:class:`hublens.analyses.TranslationLens` in a scan.

For a prompt such as ``Français: "fleur" - 中文: "`` the next token should be the Chinese word
(花). The lens reads, at the last position of every layer, the probability of the first token of
the target-language word and of the dominant-language (English) word. ``lens=`` picks the lens
(``"logit"``, ``"logit-raw"``, ``"tuned"``, ``"jacobian"``, a folder or a Lens object;
:mod:`hublens.lenses.resolve`); :func:`translation_readouts` reads several lenses off one forward.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from hublens.hooks import ActivationStore, LastToken, capture_hooks, hook_name
from hublens.hooks.names import validate_layers
from hublens.lenses.resolve import LensArg, resolve_lenses


@dataclass(frozen=True)
class TranslationReadout:
    """Per-layer probabilities of each language's word at the last prompt position.

    Attributes:
        prompt: The prompt.
        layers: Layers read.
        words: Language code -> word.
        token_ids: Language code -> the word's first token id (read without a leading space,
            as the word follows an opening quote).
        tokens: Language code -> that token as text.
        probs: ``(layer, language)`` probabilities, languages in the order of ``words``.
        top_tokens: The top-1 lens token at each layer.
        final_norm: Whether the final norm was applied (at every layer).
        lens: The lens's name (``"logit"``, ``"tuned"``, ...).
        lens_provenance: What the lens is (kind, fit corpus and its hash, fit command).
    """

    prompt: str
    layers: list[int]
    words: dict[str, str]
    token_ids: dict[str, int]
    tokens: dict[str, str]
    probs: Float[Tensor, "layer language"]
    top_tokens: list[str]
    final_norm: bool
    lens: str = "logit"
    lens_provenance: dict[str, Any] | None = None

    def to_text(self) -> str:
        """A plain-text table, one row per layer."""
        langs = list(self.words)
        head = "layer  " + "  ".join(f"p({lang}:{self.tokens[lang]!r})".ljust(18) for lang in langs)
        lines = [f"prompt: {self.prompt}", f"lens: {self.lens} (final norm: {self.final_norm})"]
        lines.append(head + "  top-1")
        for row, layer in enumerate(self.layers):
            cells = "  ".join(f"{float(p):<18.4f}" for p in self.probs[row])
            lines.append(f"{layer:>5}  {cells}  {self.top_tokens[row]!r}")
        return "\n".join(lines)


@torch.no_grad()
def translation_readout(
    model: Any,
    prompt: str,
    words: Mapping[str, str],
    *,
    layers: int | Iterable[int] | None = None,
    final_norm: bool = True,
    lens: LensArg = None,
) -> TranslationReadout:
    """Lens readout of a translation prompt at every layer, through one lens.

    :func:`translation_readouts` reads several lenses off one forward.

    Args:
        model: A HubModel.
        prompt: The prompt, ending right before the answer.
        words: Language code -> the word to read, e.g. ``{"zh": "花", "en": "flower"}``.
        layers: Layers to read (None: all).
        final_norm: Apply the final norm before unembedding (when ``lens`` is None).
        lens: One lens (:mod:`hublens.lenses.resolve`); None: ``"logit"`` if ``final_norm``
            else ``"logit-raw"``.

    Returns:
        The readout.

    Raises:
        ValueError: Empty prompt or words, a word that yields no token, or a bad lens.
    """
    readouts = translation_readouts(
        model, prompt, words, layers=layers, final_norm=final_norm, lens=lens
    )
    if len(readouts) != 1:
        raise ValueError(f"lens={lens!r}: pass one lens, or call translation_readouts.")
    return readouts[0]


@torch.no_grad()
def translation_readouts(
    model: Any,
    prompt: str,
    words: Mapping[str, str],
    *,
    layers: int | Iterable[int] | None = None,
    final_norm: bool = True,
    lens: LensArg = None,
) -> list[TranslationReadout]:
    """The readout of a translation prompt through each lens of ``lens``, off ONE forward.

    Args:
        model: A HubModel.
        prompt: The prompt, ending right before the answer.
        words: Language code -> the word to read.
        layers: Layers to read (None: all).
        final_norm: The logit lens's setting when ``lens`` is None.
        lens: A lens or a list of lenses (:mod:`hublens.lenses.resolve`).

    Returns:
        One readout per lens, in order.

    Raises:
        ValueError: Empty prompt or words, or a word that yields no token.

    Example:
        >>> r = translation_readout(model, 'Français: "fleur" - 中文: "',  # doctest: +SKIP
        ...                         {"zh": "花", "en": "flower"})
    """
    if not prompt:
        raise ValueError("prompt='': pass the translation prompt.")
    if not words:
        raise ValueError("words={}: pass at least one language -> word.")
    chosen = validate_layers(model, layers)
    named = resolve_lenses(model, lens, final_norm=final_norm)  # before the forward
    token_ids = {}
    for lang, word in words.items():
        ids = model.word_token_ids(word, leading_space=False)
        if not ids:
            raise ValueError(f"words[{lang!r}]={word!r} yields no token.")
        token_ids[lang] = ids[0]
    batch = model.tokenize(prompt)
    store = ActivationStore()
    with model.hooks(fwd_hooks=capture_hooks(model, store, layers=chosen, where=LastToken())):
        model(batch.ids, attention_mask=batch.attention_mask)
    hidden = store.stack([hook_name(layer) for layer in chosen])[:, 0]  # (layer, d_model)
    out = []
    for one in named:
        if one.name in ("logit", "logit-raw"):  # the unchanged readout: no layer tags
            readout = one.lens.readout(hidden, list(token_ids.values()), top_k=1)
        else:  # fitted lenses map each layer with its own translator
            readout = one.lens.readout(hidden, list(token_ids.values()), top_k=1, layer=chosen)
        assert readout.target_logprobs is not None
        out.append(
            TranslationReadout(
                prompt=prompt,
                layers=chosen,
                words=dict(words),
                token_ids=token_ids,
                tokens={lang: model.tokenizer.decode([i]) for lang, i in token_ids.items()},
                probs=readout.target_logprobs.exp(),
                top_tokens=[model.tokenizer.decode([int(i)]) for i in readout.top_ids[:, 0]],
                final_norm=bool(one.lens.final_norm),
                lens=one.name,
                lens_provenance=one.provenance,
            )
        )
    return out
