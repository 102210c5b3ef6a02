"""Multimodal adapters: encoder → projector → TransformerLens language model.

``MultimodalModel`` (texts with ``<image:KEY>`` / ``<audio:KEY>`` markers), the LLaVA and
Qwen2-Audio wrappers, and the real small instances (``load_vision_model``,
``load_audio_model``: EfficientNet-Lite0 / Whisper-base + trained projector + Gemma-3-270M).
``load_vision_bridge`` boots LLaVA-NeXT / Gemma-3 multimodal through TransformerLens's own bridges.
"""

from hublens.adapters.base import MediaSpan, ModalityAdapter, MultimodalBatch, MultimodalModel
from hublens.adapters.instances import load_audio_model, load_vision_model
from hublens.adapters.vision_bridges import VisionBridgeModel, load_vision_bridge

__all__ = [
    "MediaSpan",
    "ModalityAdapter",
    "MultimodalBatch",
    "MultimodalModel",
    "VisionBridgeModel",
    "load_audio_model",
    "load_vision_bridge",
    "load_vision_model",
]
