"""Encoder → projector → language model: media spliced into a TransformerLens model's input.

A :class:`ModalityAdapter` turns one raw input (an image, a clip of speech) into ``n`` rows of
the language model's embedding space: ``encoder`` gives ``(n, d_encoder)`` features and
``projector`` maps them to ``(n, d_model)``. A :class:`MultimodalModel` is a
:class:`~hublens.model.HubModel` whose texts may contain media markers such as
``"<image:red> This is"``: :meth:`MultimodalModel.tokenize` expands each marker into ``n``
placeholder tokens and records where they are (:class:`MediaSpan`), and a hook at
``hook_embed`` (the embedding output; on Gemma after the √d_model scaling, so the projector
writes in that space) overwrites the placeholder rows with the projected features. Every
TransformerLens hook, capture, lens and steering hook then works at the media positions, and
``semantic_hub_scan`` runs on a MultimodalModel unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor, nn
from transformer_lens.hook_points import HookPoint

from hublens.model import HubModel, TokenBatch

#: A media marker inside a text: ``<MODALITY:KEY>``.
MARKER = re.compile(r"<(?P<modality>[a-z]+):(?P<key>[A-Za-z0-9_.\-]+)>")
#: The hook the projected features are written at.
EMBED_HOOK = "hook_embed"


class ModalityAdapter(nn.Module):
    """One modality: raw input → ``prepare`` → ``encoder`` → ``projector`` → LM rows.

    Attributes:
        modality: The marker name, e.g. ``"image"`` or ``"audio"``.
        encoder: Module mapping a prepared batch ``(1, ...)`` to ``(1, n, d_encoder)``.
        projector: Module mapping ``(..., d_encoder)`` to ``(..., d_model)``.
        prepare: Validates and converts one raw input into the encoder's input tensor
            (``(1, ...)``); raises ValueError/TypeError on bad input.
        n_tokens: Optional function of the prepared input giving how many encoder rows are
            real (the rest are dropped), e.g. for padded audio; None keeps all rows.
    """

    def __init__(
        self,
        modality: str,
        encoder: nn.Module,
        projector: nn.Module,
        *,
        prepare: Callable[[Any], Any] | None = None,
        n_tokens: Callable[[Any], int] | None = None,
    ) -> None:
        super().__init__()
        if not re.fullmatch(r"[a-z]+", modality):
            raise ValueError(f"modality={modality!r}: use lower-case letters only, e.g. 'image'.")
        self.modality = modality
        self.encoder = encoder
        self.projector = projector
        self.prepare = prepare or (lambda x: x)
        self.n_tokens = n_tokens

    @torch.no_grad()
    def features(self, prepared: Any) -> Float[Tensor, "n d_encoder"]:
        """Encoder rows of one prepared input (no gradient; the encoder is frozen)."""
        out = self.encoder(prepared)
        if out.ndim != 3 or out.shape[0] != 1:
            raise ValueError(
                f"The {self.modality} encoder returned shape {tuple(out.shape)}; an encoder must "
                "return (1, n, d_encoder) for one input."
            )
        rows = out[0]
        if self.n_tokens is not None:
            rows = rows[: self.n_tokens(prepared)]
        return rows

    def forward(self, raw: Any) -> Float[Tensor, "n d_model"]:
        """LM-space rows of one raw input."""
        return self.projector(self.features(self.prepare(raw)))


@dataclass(frozen=True)
class MediaSpan:
    """Where one media input sits in a tokenized row.

    Attributes:
        modality: ``"image"``, ``"audio"``, ...
        key: The media key (the marker's second part).
        start: First position (token index in the row, BOS included).
        stop: One past the last position.
    """

    modality: str
    key: str
    start: int
    stop: int

    @property
    def positions(self) -> list[int]:
        """The positions as a list."""
        return list(range(self.start, self.stop))


@dataclass(frozen=True)
class MultimodalBatch(TokenBatch):
    """A right-padded batch whose rows may hold media.

    Attributes:
        spans: Per row, the media spans in order.
        media: Per row, the LM-space rows of each span (same order as ``spans``).
    """

    spans: tuple[tuple[MediaSpan, ...], ...] = ()
    media: tuple[tuple[Tensor, ...], ...] = ()

    def positions(self, row: int, modality: str | None = None) -> list[int]:
        """Media positions of one row (optionally of one modality only)."""
        return [p for s in self.spans[row] if modality in (None, s.modality) for p in s.positions]

    def mask(self, modality: str | None = None) -> Bool[Tensor, "batch pos"]:
        """Boolean map of the media positions (e.g. for a steering selector)."""
        out = torch.zeros(self.ids.shape, dtype=torch.bool, device=self.ids.device)
        for row in range(len(self.spans)):
            out[row, self.positions(row, modality)] = True
        return out

    @property
    def has_media(self) -> bool:
        """Whether any row holds media."""
        return any(self.spans)


@dataclass
class InjectHook:
    """Hook at ``hook_embed`` that writes media rows over their placeholder positions.

    Attributes:
        batch: The batch whose media to write.
        prompt_len: Write only in passes that hold at least this many positions (the whole
            prompt); KV-cached decode steps (one position) are left alone.
    """

    batch: MultimodalBatch
    prompt_len: int | None = None
    _rows: list[tuple[int, int, int, Tensor]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        for row, (spans, media) in enumerate(zip(self.batch.spans, self.batch.media, strict=True)):
            for span, rows in zip(spans, media, strict=True):
                self._rows.append((row, span.start, span.stop, rows))

    def __call__(
        self, x: Float[Tensor, "batch pos d_model"], hook: HookPoint
    ) -> Float[Tensor, "batch pos d_model"] | None:
        """Return the embeddings with the media rows written in (out of place: autograd-safe)."""
        need = self.prompt_len if self.prompt_len is not None else self.batch.ids.shape[1]
        if x.shape[1] < need:
            return None
        if x.shape[0] != self.batch.ids.shape[0]:
            raise ValueError(
                f"The media batch has {self.batch.ids.shape[0]} rows but the forward pass has "
                f"{x.shape[0]}; run the ids of the same MultimodalBatch."
            )
        out = x.clone()
        for row, start, stop, rows in self._rows:
            out[row, start:stop] = rows.to(dtype=x.dtype, device=x.device)
        return out


class MultimodalModel(HubModel):
    """A HubModel whose texts may contain media markers ``<MODALITY:KEY>``.

    Register media with :meth:`add_media` (or pass a mapping of ``key -> raw input``), then use
    texts like ``"<image:red_0> This represents"`` anywhere a HubModel takes texts, including
    ``semantic_hub_scan``. Calling the model with the ids of the batch :meth:`tokenize` just
    returned writes the media rows in at ``hook_embed``; ``model(batch)`` does the same
    explicitly, and :meth:`injection_hooks` gives the hook for your own
    ``model.hooks(...)``/``generate`` calls.

    Attributes:
        adapters: Modality name → adapter.
        media: Key → raw input, per modality.

    Example:
        >>> mm = MultimodalModel(lm, {"image": adapter})  # doctest: +SKIP
        >>> marker = mm.add_media("image", pixels, key="red")  # doctest: +SKIP
        >>> batch = mm.tokenize([f"{marker} This is"])  # doctest: +SKIP
        >>> logits = mm(batch)  # doctest: +SKIP
        >>> batch.positions(0, "image")  # doctest: +SKIP
        [1, 2, ..., 49]
    """

    def __init__(self, lm: HubModel, adapters: Mapping[str, ModalityAdapter]) -> None:
        super().__init__(
            lm.bridge,
            lm.tokenizer,
            prepend_bos=lm.prepend_bos,
            dominant_language=lm.dominant_language,
            provenance=lm.provenance,
        )
        if not adapters:
            raise ValueError("adapters={}: pass at least one ModalityAdapter.")
        for name, adapter in adapters.items():
            if not isinstance(adapter, ModalityAdapter) or adapter.modality != name:
                raise ValueError(
                    f"adapters[{name!r}] must be a ModalityAdapter with modality={name!r}."
                )
        self.adapters = dict(adapters)
        self.media: dict[str, dict[str, Any]] = {name: {} for name in adapters}
        self._cache: dict[tuple[str, str], Tensor] = {}
        self._last: MultimodalBatch | None = None
        pad = self.tokenizer.pad_token_id
        self.placeholder_id = int(pad if pad is not None else self.tokenizer.eos_token_id or 0)

    def __repr__(self) -> str:
        return f"MultimodalModel({super().__repr__()}, modalities={list(self.adapters)})"

    # ---- media registry ------------------------------------------------------------------
    def add_media(self, modality: str, raw: Any, *, key: str | None = None) -> str:
        """Register one raw input; returns its marker (validated now, encoded when first used).

        Args:
            modality: One of ``self.adapters``.
            raw: The raw input (what the adapter's ``prepare`` accepts).
            key: Its key (letters, digits, ``_.-``); None numbers it.

        Returns:
            The marker to put in texts, e.g. ``"<image:3>"``.

        Raises:
            ValueError: Unknown modality, bad key, a key already used, or bad input.
        """
        if modality not in self.adapters:
            raise ValueError(
                f"modality={modality!r}: this model has {sorted(self.adapters)}; add an adapter."
            )
        registry = self.media[modality]
        key = str(len(registry)) if key is None else key
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", key):
            raise ValueError(f"key={key!r}: use letters, digits, '_', '.', '-' only.")
        if key in registry:
            raise ValueError(f"key={key!r} is already registered for {modality}; pick another.")
        prepared = self.adapters[modality].prepare(raw)  # validate now, before any forward
        registry[key] = prepared
        self._cache.pop((modality, key), None)
        return f"<{modality}:{key}>"

    def embed_media(self, modality: str, key: str) -> Float[Tensor, "n d_model"]:
        """LM-space rows of a registered input (cached, no gradient)."""
        if (modality, key) not in self._cache:
            if modality not in self.media or key not in self.media[modality]:
                known = sorted(self.media.get(modality, {}))[:10]
                raise ValueError(
                    f"<{modality}:{key}> is not registered (known {modality} keys start "
                    f"{known}); call add_media({modality!r}, raw, key={key!r}) first."
                )
            adapter = self.adapters[modality]
            with torch.no_grad():
                rows = adapter.projector(adapter.features(self.media[modality][key]))
            if not bool(torch.isfinite(rows).all()):
                raise FloatingPointError(f"<{modality}:{key}> encodes to NaN/inf values.")
            self._cache[(modality, key)] = rows.detach().float()
        return self._cache[(modality, key)]

    def clear_cache(self) -> None:
        """Forget cached media rows (call after changing a projector)."""
        self._cache.clear()

    # ---- tokenization --------------------------------------------------------------------
    def tokenize(  # type: ignore[override]
        self,
        texts: str | list[str],
        *,
        media_rows: Callable[[str, str], Tensor] | None = None,
    ) -> MultimodalBatch:
        """Tokenize texts with media markers into a right-padded batch.

        Each marker becomes as many placeholder tokens as its media has rows; text between
        markers is tokenized as is (BOS first per the model's policy).

        Args:
            texts: One text or a list.
            media_rows: Override of :meth:`embed_media` (e.g. rows with gradient, in training).

        Returns:
            The batch, with spans and media rows; remembered so that ``model(batch.ids)``
            writes the media in.

        Raises:
            ValueError: Empty texts, unknown modality or key.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise ValueError("texts=[]: pass at least one text to tokenize.")
        rows_of = media_rows or self.embed_media
        rows: list[list[int]] = []
        spans: list[tuple[MediaSpan, ...]] = []
        media: list[tuple[Tensor, ...]] = []
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text:
                raise ValueError(f"texts[{i}]={text!r}: every text must be a non-empty string.")
            ids = [self.tokenizer.bos_token_id] if self.prepend_bos else []
            row_spans, row_media, cursor = [], [], 0
            for match in MARKER.finditer(text):
                modality, key = match["modality"], match["key"]
                if modality not in self.adapters:
                    raise ValueError(
                        f"texts[{i}] has the marker {match[0]!r} but this model has no "
                        f"{modality!r} adapter (it has {sorted(self.adapters)})."
                    )
                ids += self._encode(text[cursor : match.start()])
                vectors = rows_of(modality, key)
                row_spans.append(MediaSpan(modality, key, len(ids), len(ids) + len(vectors)))
                row_media.append(vectors)
                ids += [self.placeholder_id] * len(vectors)
                cursor = match.end()
            ids += self._encode(text[cursor:])
            if not ids:
                raise ValueError(f"texts[{i}]={text!r} tokenizes to nothing.")
            rows.append(ids)
            spans.append(tuple(row_spans))
            media.append(tuple(row_media))
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        pad = pad if pad is not None else (self.tokenizer.eos_token_id or 0)
        ids_t = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids_t[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        device = self.device
        batch = MultimodalBatch(
            ids=ids_t.to(device),
            attention_mask=mask.to(device),
            lengths=mask.sum(1).to(device),
            spans=tuple(spans),
            media=tuple(media),
        )
        self._last = batch if batch.has_media else None
        return batch

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    # ---- running -------------------------------------------------------------------------
    def injection_hooks(
        self, batch: MultimodalBatch, *, prompt_len: int | None = None
    ) -> list[tuple[str, InjectHook]]:
        """``[("hook_embed", hook)]`` writing the batch's media rows; for ``model.hooks``.

        Args:
            batch: From :meth:`tokenize`.
            prompt_len: For generation: write only passes holding the whole prompt.
        """
        if not isinstance(batch, MultimodalBatch):
            raise TypeError(f"batch={type(batch).__name__}: pass a MultimodalBatch from tokenize.")
        return [(EMBED_HOOK, InjectHook(batch, prompt_len))] if batch.has_media else []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Forward pass; media rows are written in for a MultimodalBatch or its ids.

        ``model(batch)`` runs ``batch.ids`` with its attention mask. ``model(ids, ...)`` with
        the ids of the batch :meth:`tokenize` returned last writes that batch's media; ids
        with no media run as plain text.
        """
        if args and isinstance(args[0], MultimodalBatch):
            batch: MultimodalBatch | None = args[0]
            kwargs.setdefault("attention_mask", args[0].attention_mask)
            args = (args[0].ids, *args[1:])
        elif args and isinstance(args[0], Tensor) and not args[0].is_floating_point():
            last = self._last
            same = last is not None and args[0].shape == last.ids.shape
            batch = last if (last is not None and same and torch.equal(args[0], last.ids)) else None
        else:
            batch = None
        if batch is None or not batch.has_media:
            return self.bridge(*args, **kwargs)
        with self.bridge.hooks(fwd_hooks=self.injection_hooks(batch)):
            return self.bridge(*args, **kwargs)

    def generate_text(self, text: str, *, max_new_tokens: int = 8, **kwargs: Any) -> str:
        """Greedy continuation of one text with media (decoded new tokens only).

        Args:
            text: The prompt, with markers.
            max_new_tokens: Tokens to generate.
            **kwargs: Passed to the bridge's ``generate``.
        """
        batch = self.tokenize([text])
        prompt_len = batch.ids.shape[1]
        kwargs.setdefault("do_sample", False)
        kwargs.setdefault("verbose", False)
        with self.bridge.hooks(fwd_hooks=self.injection_hooks(batch, prompt_len=prompt_len)):
            out: Any = self.bridge.generate(batch.ids, max_new_tokens=max_new_tokens, **kwargs)
        return str(self.tokenizer.decode(out[0, prompt_len:], skip_special_tokens=True))


def media_positions(model: MultimodalModel, text: str, modality: str | None = None) -> list[int]:
    """Media positions of one text (token indices, BOS included), without running the model.

    Example:
        >>> media_positions(mm, "<image:red> This is")  # doctest: +SKIP
        [1, 2, ..., 49]
    """
    batch = model.tokenize([text])
    return batch.positions(0, modality)
