"""Qwen2-Audio (Whisper-style encoder + linear projector + Qwen2) as a MultimodalModel.

The audio tower of ``Qwen2AudioForConditionalGeneration`` (a Whisper encoder with average
pooling) is the encoder, its ``multi_modal_projector`` the projector, and the Qwen2 language
model is booted as a TransformerLens bridge. As in transformers' own forward, the tower sees
the padded log-mel input with an attention mask that hides the frames past the clip's length,
and only the first ``output_length`` rows of each clip are spliced in.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn

from hublens.adapters.base import ModalityAdapter, MultimodalModel


class Qwen2AudioEncoderWrapper(nn.Module):
    """The audio tower with the padding mask transformers builds for it.

    Input: a tuple ``(features (1, n_mels, frames), length)`` from :func:`mel_checker`.
    """

    def __init__(self, tower: nn.Module) -> None:
        super().__init__()
        self.tower: Any = tower

    def forward(self, prepared: tuple[Tensor, int]) -> Float[Tensor, "1 n d_encoder"]:
        """Encoder rows of one clip (all pooled positions; the adapter trims to the length)."""
        from transformers.masking_utils import create_bidirectional_mask

        features, length = prepared
        conv_len = (length - 1) // 2 + 1
        max_len = (features.shape[-1] - 2) // 2 + 1
        mask_2d = (torch.arange(max_len)[None] < conv_len).long()
        dummy = torch.zeros((1, max_len, 1), dtype=features.dtype)
        mask = create_bidirectional_mask(
            config=self.tower.config, inputs_embeds=dummy, attention_mask=mask_2d
        )
        return self.tower(features, attention_mask=mask).last_hidden_state


def output_length(prepared: tuple[Tensor, int]) -> int:
    """Number of pooled rows of a clip of ``length`` mel frames (transformers' formula)."""
    length = prepared[1]
    conv_len = (length - 1) // 2 + 1
    return (conv_len - 2) // 2 + 1


def mel_checker(n_mels: int, frames: int) -> Any:
    """A ``prepare`` function for ``(features, length)``: padded log-mel input + real frames."""

    def prepare(raw: Any) -> tuple[Tensor, int]:
        if not isinstance(raw, tuple) or len(raw) != 2:
            raise TypeError(
                "audio input must be (features, length): log-mel features "
                f"({n_mels}, {frames}) padded to {frames} frames, and the number of real frames."
            )
        features, length = raw
        x = features[None] if features.ndim == 2 else features
        if tuple(x.shape) != (1, n_mels, frames):
            raise ValueError(
                f"features has shape {tuple(features.shape)}; pad or cut it to ({n_mels}, "
                f"{frames})."
            )
        if isinstance(length, bool) or not isinstance(length, int) or not 4 <= length <= frames:
            raise ValueError(f"length={length!r}: pass the real frame count in [4, {frames}].")
        return x.float(), length

    return prepare


def from_qwen2_audio(model: Any, tokenizer: Any, **load_options: Any) -> MultimodalModel:
    """Wrap a transformers ``Qwen2AudioForConditionalGeneration`` as a MultimodalModel.

    Args:
        model: The Qwen2-Audio model.
        tokenizer: Its tokenizer.
        **load_options: Passed to :func:`hublens.load_model`.

    Returns:
        A MultimodalModel with an ``"audio"`` adapter taking ``(features, length)``.

    Example:
        >>> mm = from_qwen2_audio(qwen, tokenizer)  # doctest: +SKIP
        >>> marker = mm.add_media("audio", (input_features[0], 900))  # doctest: +SKIP
    """
    from transformers import AutoModelForCausalLM

    from hublens.loading import load_model

    config = model.config
    inner = model.model
    causal = AutoModelForCausalLM.from_config(config.text_config)
    causal.model = inner.language_model
    causal.lm_head = model.lm_head
    causal.config.architectures = [type(causal).__name__]
    causal.eval()
    audio = config.audio_config
    frames = int(audio.max_source_positions) * 2
    adapter = ModalityAdapter(
        "audio",
        Qwen2AudioEncoderWrapper(inner.audio_tower).eval(),
        inner.multi_modal_projector.eval(),
        prepare=mel_checker(int(audio.num_mel_bins), frames),
        n_tokens=output_length,
    )
    lm = load_model(causal, tokenizer, **load_options)
    return MultimodalModel(lm, {"audio": adapter})
