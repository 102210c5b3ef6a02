"""LLaVA-NeXT and Gemma-3 multimodal through TransformerLens 4.3's own multimodal bridges.

Unlike :class:`~hublens.adapters.base.MultimodalModel` (encoder and projector split off, rows
written at ``hook_embed``), the whole transformers model is booted as one TransformerLens bridge
(``LlavaNextArchitectureAdapter``, ``Gemma3MultimodalArchitectureAdapter``) and the pixel values
go through transformers' own forward: its vision tower, projector and ``masked_scatter`` put the
image rows at the image-token positions, so logits are transformers' own. Texts hold
``<image:KEY>`` markers as in a MultimodalModel; :meth:`VisionBridgeModel.tokenize` expands each
into the family's image-token block and records its positions (:class:`MediaSpan`), and a
forward pre-hook on the wrapped transformers model (registered once, for the model's lifetime)
adds the batch's pixel values whenever it runs the ids of the batch tokenized last, so captures,
lenses, steering, ``forward_until`` and ``semantic_hub_scan`` need no change.

Pixel tensors are built here from the config alone (no processor, nothing downloaded or
installed): :func:`image_pixels` resizes a normalised ``(3, H, W)`` image the way the family's
processor lays it out (LLaVA-NeXT: the base view plus the tiles of the best grid pinpoint).

Qwen2.5-VL is not bridged: TransformerLens 4.3's ``Qwen2_5_VLArchitectureAdapter`` requires
torchvision at boot, which hublens never installs (see :data:`QWEN2_5_VL_REASON`).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from hublens.adapters.base import MARKER, MediaSpan, MultimodalBatch
from hublens.model import HubModel

#: Families booted through TransformerLens's own bridge, by transformers model class.
FAMILIES = {
    "LlavaNextForConditionalGeneration": "llava_next",
    "Gemma3ForConditionalGeneration": "gemma3",
}

#: Measured on TransformerLens 4.3 / transformers 5.23 with torchvision absent.
QWEN2_5_VL_REASON = (
    "ImportError: Qwen2_5_VLArchitectureAdapter needs the optional torchvision library from "
    "the 'multimodal' dependency group. Install with `pip install torchvision` (contributors: "
    "`uv sync --group multimodal`)."
)


def _resize(image: Tensor, height: int, width: int) -> Tensor:
    return torch.nn.functional.interpolate(
        image[None], size=(height, width), mode="bilinear", align_corners=False
    )[0]


def check_image(image: Any) -> None:
    """Raise TypeError/ValueError unless ``image`` is a finite float ``(3, H, W)`` tensor."""
    if not isinstance(image, Tensor) or not image.is_floating_point() or image.ndim != 3:
        raise TypeError(
            f"image={type(image).__name__} {tuple(getattr(image, 'shape', ()))}: pass a float "
            "tensor (3, H, W), normalised for the vision tower."
        )
    if image.shape[0] != 3 or not bool(torch.isfinite(image).all()):
        raise ValueError(
            f"image has shape {tuple(image.shape)}: pass 3 channels first, finite values."
        )


def image_pixels(config: Any, image: Float[Tensor, "3 h w"]) -> tuple[Tensor, tuple[int, int]]:
    """Pixel values of one normalised image for the family of ``config`` (no processor).

    Args:
        config: A ``LlavaNextConfig`` or ``Gemma3Config``.
        image: ``(3, H, W)`` float tensor, already normalised for the vision tower.

    Returns:
        ``(pixels, (H, W))``: LLaVA-NeXT ``(1 + tiles, 3, s, s)`` (the base view resized to
        ``s``, then the image resized to fit the best grid pinpoint, centred, zero-padded in
        normalised space and cut into ``s x s`` tiles, row by row); Gemma-3 ``(3, s, s)``.

    Raises:
        TypeError, ValueError: ``image`` is not a finite float ``(3, H, W)`` tensor.
    """
    check_image(image)
    size = (int(image.shape[1]), int(image.shape[2]))
    s = int(config.vision_config.image_size)
    if config.model_type == "gemma3":
        return _resize(image.float(), s, s), size
    from transformers.image_processing_utils import select_best_resolution

    best_h, best_w = select_best_resolution(size, config.image_grid_pinpoints)
    scale = min(best_h / size[0], best_w / size[1])
    new_h, new_w = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    canvas = torch.zeros(3, best_h, best_w)
    top, left = (best_h - new_h) // 2, (best_w - new_w) // 2
    canvas[:, top : top + new_h, left : left + new_w] = _resize(image.float(), new_h, new_w)
    tiles = [
        canvas[:, i : i + s, j : j + s] for i in range(0, best_h, s) for j in range(0, best_w, s)
    ]
    return torch.stack([_resize(image.float(), s, s), *tiles]), size


class VisionBridgeModel(HubModel):
    """A HubModel booted through TransformerLens's multimodal bridge, texts with ``<image:KEY>``.

    Attributes:
        family: ``"llava_next"`` or ``"gemma3"``.
        adapters: ``{"image": family}`` (what analyses look for on a media model).
        media: Key -> ``(pixels, (H, W))`` of each registered image.
        image_token_id: The id transformers' forward replaces by image rows.

    Example:
        >>> mm = load_vision_bridge(llava_next, tokenizer)  # doctest: +SKIP
        >>> marker = mm.add_media("image", image)  # doctest: +SKIP
        >>> batch = mm.tokenize([f"{marker} This is"])  # doctest: +SKIP
        >>> logits = mm(batch)  # doctest: +SKIP
    """

    def __init__(self, lm: HubModel) -> None:
        super().__init__(
            lm.bridge,
            lm.tokenizer,
            prepend_bos=lm.prepend_bos,
            dominant_language=lm.dominant_language,
            provenance=lm.provenance,
        )
        hf: Any = lm.bridge.original_model
        self.family = FAMILIES[type(hf).__name__]
        self.config: Any = hf.config
        self.adapters: dict[str, str] = {"image": self.family}
        self.media: dict[str, dict[str, Any]] = {"image": {}}
        self._counts: dict[str, int] = {}
        self._last: MultimodalBatch | None = None
        config = hf.config
        if self.family == "gemma3":
            self.image_token_id = int(config.image_token_index)
            self._before = [int(config.boi_token_index)]
            self._after = [int(config.eoi_token_index)]
        else:
            self.image_token_id = int(config.image_token_id)
            self._before, self._after = [], []
        hf.register_forward_pre_hook(self._add_pixels, with_kwargs=True)

    def __repr__(self) -> str:
        return f"VisionBridgeModel({super().__repr__()}, family={self.family!r})"

    def add_media(self, modality: str, image: Any, *, key: str | None = None) -> str:
        """Register one normalised ``(3, H, W)`` image; returns its marker.

        Raises:
            ValueError: Not ``"image"``, a bad or used key, or a bad image.
        """
        if modality != "image":
            raise ValueError(f"modality={modality!r}: this model takes 'image' only.")
        registry = self.media["image"]
        key = str(len(registry)) if key is None else key
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", key):
            raise ValueError(f"key={key!r}: use letters, digits, '_', '.', '-' only.")
        if key in registry:
            raise ValueError(f"key={key!r} is already registered for image; pick another.")
        check_image(image)  # before jaxtyping's annotation check: the error says what to pass
        registry[key] = image_pixels(self.config, image)
        self._counts.pop(key, None)
        return f"<image:{key}>"

    def n_image_tokens(self, key: str) -> int:
        """How many image-token positions one registered image fills (transformers' count)."""
        if key not in self.media["image"]:
            known = sorted(self.media["image"])[:10]
            raise ValueError(
                f"<image:{key}> is not registered (known image keys start {known}); call "
                f"add_media('image', image, key={key!r}) first."
            )
        if key not in self._counts:
            if self.family == "gemma3":
                self._counts[key] = int(self.config.mm_tokens_per_image)
            else:
                pixels, size = self.media["image"][key]
                hf: Any = self.bridge.original_model
                with torch.no_grad():
                    out = hf.model.get_image_features(
                        pixels[None].to(self.device), torch.tensor([size]), return_dict=True
                    )
                self._counts[key] = int(out.pooler_output[0].shape[0])
        return self._counts[key]

    def tokenize(self, texts: str | list[str], **_: Any) -> MultimodalBatch:  # type: ignore[override]
        """Tokenize texts with ``<image:KEY>`` markers into a right-padded batch with spans.

        Each marker becomes the family's image block (Gemma-3: BOI, image tokens, EOI); the
        spans cover the image tokens only. The batch is remembered, so ``model(batch.ids)``
        runs with its pixel values.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise ValueError("texts=[]: pass at least one text to tokenize.")
        rows, spans, media = [], [], []
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text:
                raise ValueError(f"texts[{i}]={text!r}: every text must be a non-empty string.")
            ids = [self.tokenizer.bos_token_id] if self.prepend_bos else []
            row_spans, row_media, cursor = [], [], 0
            for match in MARKER.finditer(text):
                if match["modality"] != "image":
                    raise ValueError(
                        f"texts[{i}] has the marker {match[0]!r}; this model takes images only."
                    )
                key = match["key"]
                ids += self._encode(text[cursor : match.start()]) + self._before
                n = self.n_image_tokens(key)
                row_spans.append(MediaSpan("image", key, len(ids), len(ids) + n))
                row_media.append(self.media["image"][key][0])
                ids += [self.image_token_id] * n + self._after
                cursor = match.end()
            ids += self._encode(text[cursor:])
            rows.append(ids)
            spans.append(tuple(row_spans))
            media.append(tuple(row_media))
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        ids_t = torch.full((len(rows), width), pad if pad is not None else 0, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids_t[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        batch = MultimodalBatch(
            ids=ids_t.to(self.device),
            attention_mask=mask.to(self.device),
            lengths=mask.sum(1).to(self.device),
            spans=tuple(spans),
            media=tuple(media),
        )
        self._last = batch if batch.has_media else None
        return batch

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False)) if text else []

    def media_kwargs(self, batch: MultimodalBatch) -> dict[str, Tensor]:
        """What transformers' forward takes besides the ids for this batch's images.

        LLaVA-NeXT: ``pixel_values`` (images in row order, tiles zero-padded to the most) and
        ``image_sizes``; Gemma-3: ``pixel_values`` and ``token_type_ids`` (1 at image tokens).
        """
        if not batch.has_media:
            return {}
        keys = [s.key for row in batch.spans for s in row]
        pixels = [self.media["image"][k][0] for k in keys]
        device = batch.ids.device
        if self.family == "gemma3":
            return {
                "pixel_values": torch.stack(pixels).to(device),
                "token_type_ids": (batch.ids == self.image_token_id).long(),
            }
        most = max(p.shape[0] for p in pixels)
        padded = torch.zeros(len(pixels), most, *pixels[0].shape[1:])
        for i, p in enumerate(pixels):
            padded[i, : p.shape[0]] = p
        sizes = torch.tensor([self.media["image"][k][1] for k in keys])
        return {"pixel_values": padded.to(device), "image_sizes": sizes.to(device)}

    def _add_pixels(
        self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        """Forward pre-hook: add the last batch's pixel values to a pass that runs its ids.

        Ids that extend the batch's (uncached generation) get them too; passes with pixel
        values, other ids, or one new token (KV-cached decode) are left alone.
        """
        last = self._last
        ids = kwargs.get("input_ids", args[0] if args else None)
        if last is None or "pixel_values" in kwargs or not isinstance(ids, Tensor):
            return None
        rows, width = last.ids.shape
        if ids.ndim != 2 or ids.shape[0] != rows or ids.shape[1] < width:
            return None  # plain text, or a KV-cached decode step (its cache holds the image)
        if not torch.equal(ids[:, :width], last.ids):
            return None
        extra = self.media_kwargs(last)  # the batch itself, or an uncached generation step
        if "token_type_ids" in extra:
            extra["token_type_ids"] = (ids == self.image_token_id).long()
        return args, {**kwargs, **extra}

    def injection_hooks(self, batch: MultimodalBatch, **_: Any) -> list[Any]:
        """None: transformers' own forward writes the image rows (for ``semantic_hub_scan``)."""
        if not isinstance(batch, MultimodalBatch):
            raise TypeError(f"batch={type(batch).__name__}: pass a MultimodalBatch from tokenize.")
        self._last = batch if batch.has_media else self._last
        return []

    def generate_text(self, text: str, *, max_new_tokens: int = 8, **kwargs: Any) -> str:
        """Greedy continuation of one text with images (decoded new tokens only).

        Args:
            text: The prompt, with ``<image:KEY>`` markers.
            max_new_tokens: Tokens to generate.
            **kwargs: Passed to the bridge's ``generate`` (e.g. ``use_past_kv_cache``).
        """
        batch = self.tokenize([text])
        kwargs.setdefault("do_sample", False)
        kwargs.setdefault("verbose", False)
        out: Any = self.bridge.generate(batch.ids, max_new_tokens=max_new_tokens, **kwargs)
        return str(self.tokenizer.decode(out[0, batch.ids.shape[1] :], skip_special_tokens=True))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Forward pass; ``model(batch)`` runs a MultimodalBatch with its mask and pixels."""
        if args and isinstance(args[0], MultimodalBatch):
            batch = args[0]
            self._last = batch if batch.has_media else None
            kwargs.setdefault("attention_mask", batch.attention_mask)
            args = (batch.ids, *args[1:])
        return self.bridge(*args, **kwargs)


def load_vision_bridge(model: Any, tokenizer: Any, **load_options: Any) -> VisionBridgeModel:
    """Boot a transformers LLaVA-NeXT or Gemma-3 multimodal model through TransformerLens's bridge.

    Args:
        model: ``LlavaNextForConditionalGeneration`` or ``Gemma3ForConditionalGeneration``.
        tokenizer: Its tokenizer (image, BOI/EOI tokens in its vocabulary).
        **load_options: Passed to :func:`hublens.load_model` (``prepend_bos``, ``dtype``, ...).

    Returns:
        The model; register images with ``add_media("image", image)``.

    Raises:
        ValueError: Another architecture (Qwen2.5-VL: :data:`QWEN2_5_VL_REASON`).

    Example:
        >>> mm = load_vision_bridge(gemma3_mm, tokenizer)  # doctest: +SKIP
    """
    from hublens.loading import load_model

    name = type(model).__name__
    if name not in FAMILIES:
        reason = f" ({QWEN2_5_VL_REASON})" if name.startswith("Qwen2_5_VL") else ""
        raise ValueError(
            f"model={name}: load_vision_bridge takes {sorted(FAMILIES)}{reason}; use "
            "hublens.adapters.llava / qwen2_audio for the split adapters."
        )
    model.config._attn_implementation = "eager"
    return VisionBridgeModel(load_model(model, tokenizer, **load_options))
