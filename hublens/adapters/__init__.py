"""Multimodal adapters: encoder → projector → TransformerLens language model.

``MultimodalModel`` (texts with ``<image:KEY>`` / ``<audio:KEY>`` markers), the LLaVA and
Qwen2-Audio wrappers, and the real small instances (``load_vision_model``,
``load_audio_model``: EfficientNet-Lite0 / Whisper-base + trained projector + Gemma-3-270M).
"""

from hublens.adapters.base import MediaSpan, ModalityAdapter, MultimodalBatch, MultimodalModel
from hublens.adapters.instances import load_audio_model, load_vision_model

__all__ = [
    "MediaSpan",
    "ModalityAdapter",
    "MultimodalBatch",
    "MultimodalModel",
    "load_audio_model",
    "load_vision_model",
]
