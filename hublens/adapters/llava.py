"""LLaVA (transformers' ``LlavaForConditionalGeneration``) as a :class:`MultimodalModel`.

The checkpoint is split into its parts: the vision tower with LLaVA's feature selection
(``vision_feature_layer``, CLS dropped for the ``"default"`` strategy) is the encoder, the
``multi_modal_projector`` is the projector, and the language model with its ``lm_head`` is
booted as a TransformerLens bridge. Image rows are written at ``hook_embed``, exactly where
LLaVA's own forward scatters them into ``inputs_embeds``, so logits equal transformers' own.
TransformerLens 4.3 also has a LLaVA bridge; hublens uses the split so that image, audio and
any other adapter share one mechanism (``<image:KEY>`` markers and recorded positions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from hublens.adapters.base import ModalityAdapter, MultimodalModel


class LlavaVisionEncoder(nn.Module):
    """A LLaVA vision tower plus LLaVA's choice of hidden layer and tokens.

    Attributes:
        tower: The vision model (e.g. CLIP's vision transformer).
        layer: Index into the tower's hidden states (LLaVA's ``vision_feature_layer``); a list
            concatenates several layers along the feature axis.
        strategy: ``"default"`` drops the CLS token, ``"full"`` keeps it.
    """

    def __init__(self, tower: nn.Module, *, layer: int | list[int], strategy: str) -> None:
        super().__init__()
        if strategy not in ("default", "full"):
            raise ValueError(f"strategy={strategy!r}: LLaVA uses 'default' or 'full'.")
        self.tower: Any = tower
        self.layer = layer
        self.strategy = strategy

    def forward(self, pixel_values: Float[Tensor, "1 3 h w"]) -> Float[Tensor, "1 n d_encoder"]:
        """Selected hidden states of the tower."""
        out = self.tower(pixel_values, output_hidden_states=True, return_dict=True)
        layers = [self.layer] if isinstance(self.layer, int) else list(self.layer)
        chosen = [out.hidden_states[k] for k in layers]
        if self.strategy == "default":
            chosen = [h[:, 1:] for h in chosen]
        return torch.cat(chosen, dim=-1)


def pixel_checker(image_size: int, *, channels: int = 3) -> Any:
    """A ``prepare`` function that checks pixel tensors of one square size.

    Accepts ``(channels, s, s)`` or ``(1, channels, s, s)`` float tensors (already normalised
    the way the vision tower expects) and returns ``(1, channels, s, s)``.
    """

    def prepare(pixels: Any) -> Tensor:
        if not isinstance(pixels, Tensor) or not pixels.is_floating_point():
            raise TypeError(
                f"pixels={type(pixels).__name__}: pass a float tensor (3, {image_size}, "
                f"{image_size}), normalised for the vision tower."
            )
        x = pixels[None] if pixels.ndim == 3 else pixels
        if (
            x.ndim != 4
            or x.shape[0] != 1
            or tuple(x.shape[1:])
            != (
                channels,
                image_size,
                image_size,
            )
        ):
            raise ValueError(
                f"pixels has shape {tuple(pixels.shape)}; this vision tower takes "
                f"({channels}, {image_size}, {image_size}). Resize the image to "
                f"{image_size}x{image_size} first."
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError("pixels contains NaN or infinite values.")
        return x

    return prepare


def from_llava(llava: Any, tokenizer: Any, **load_options: Any) -> MultimodalModel:
    """Wrap a transformers ``LlavaForConditionalGeneration`` as a MultimodalModel.

    Booting the bridge changes the language model in place (eager attention, renamed state
    keys); keep a deep copy if you need the original afterwards.

    Args:
        llava: The LLaVA model (e.g. ``LlavaForConditionalGeneration.from_pretrained(folder)``).
        tokenizer: Its tokenizer.
        **load_options: Passed to :func:`hublens.load_model` (``prepend_bos``, ``dtype``, ...).

    Returns:
        A MultimodalModel with an ``"image"`` adapter; images are ``(3, s, s)`` pixel tensors
        normalised as the checkpoint's processor would.

    Example:
        >>> mm = from_llava(llava, tokenizer)  # doctest: +SKIP
        >>> marker = mm.add_media("image", pixel_values[0])  # doctest: +SKIP
        >>> logits = mm(mm.tokenize([f"USER: {marker} What is this? ASSISTANT:"]))  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM

    from hublens.loading import load_model

    config = llava.config
    inner = llava.model
    causal = AutoModelForCausalLM.from_config(config.text_config)
    causal.model = inner.language_model
    causal.lm_head = llava.lm_head
    causal.config.architectures = [type(causal).__name__]
    causal.eval()
    encoder = LlavaVisionEncoder(
        inner.vision_tower,
        layer=config.vision_feature_layer,
        strategy=config.vision_feature_select_strategy,
    ).eval()
    adapter = ModalityAdapter(
        "image",
        encoder,
        inner.multi_modal_projector.eval(),
        prepare=pixel_checker(int(config.vision_config.image_size)),
    )
    lm = load_model(causal, tokenizer, **load_options)
    return MultimodalModel(lm, {"image": adapter})


def load_llava(path: str | Path, **load_options: Any) -> MultimodalModel:
    """Load a local LLaVA folder (config, ``*.safetensors``, tokenizer) as a MultimodalModel.

    Reads safetensors only, offline; no processor is loaded (so nothing is ever installed):
    build pixel tensors normalised as the checkpoint's processor would.

    Args:
        path: The folder of a ``LlavaForConditionalGeneration`` checkpoint.
        **load_options: Passed to :func:`hublens.load_model`.

    Example:
        >>> mm = load_llava("/models/llava-tiny")  # doctest: +SKIP
    """
    from transformers import AutoTokenizer, LlavaForConditionalGeneration

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"path={str(folder)!r} has no config.json; pass a saved LLaVA checkpoint folder."
        )
    model = LlavaForConditionalGeneration.from_pretrained(
        folder,
        use_safetensors=True,
        local_files_only=True,
        attn_implementation="eager",
        dtype=load_options.get("dtype", torch.float32),
    )
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return from_llava(model.eval(), tokenizer, **load_options)
