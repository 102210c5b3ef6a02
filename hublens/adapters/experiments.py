"""The paper's vision and audio experiments on a MultimodalModel, in one namespace.

The parts live in files of one idea each: held-out data (:mod:`.experiment_data`), the
similarity and lens scans (:mod:`.experiment_scans`) and the steering at media positions
(:mod:`.media_steering`, through the one hook :func:`hublens.steering.direction_hook`).
``hublens multimodal`` imports them from here.
"""

from hublens.adapters.experiment_data import (
    BASELINE_COLOUR,
    LENS_COLOURS,
    audio_data,
    colour_lens_data,
    vision_similarity_data,
)
from hublens.adapters.experiment_scans import audio_scan, vision_scan
from hublens.adapters.media_steering import (
    HALF_COLOURS,
    MAMMAL_PROMPT,
    audio_steering,
    colour_replacement,
    yes_probability,
)
from hublens.steering.hook import DirectionHook, direction_hook

__all__ = [
    "BASELINE_COLOUR",
    "HALF_COLOURS",
    "LENS_COLOURS",
    "MAMMAL_PROMPT",
    "DirectionHook",
    "audio_data",
    "audio_scan",
    "audio_steering",
    "colour_lens_data",
    "colour_replacement",
    "direction_hook",
    "vision_scan",
    "vision_similarity_data",
    "yes_probability",
]
