"""Similarity and logit-lens scans of the vision and audio experiments.

Both run through :func:`hublens.semantic_hub_scan` on the held-out data of
:mod:`hublens.adapters.experiment_data`, one ScanResult for similarity and one for the lens.
"""

from __future__ import annotations

from typing import Any

from hublens.adapters.base import MultimodalModel
from hublens.adapters.experiment_data import (
    BASELINE_COLOUR,
    audio_data,
    colour_lens_data,
    vision_similarity_data,
)


def vision_scan(mm: MultimodalModel, *, progress: bool = True) -> Any:
    """Image↔caption similarity and the colour lens, one ScanResult each (concatenated)."""
    from hublens.analyses.modality_lens import ModalityLens
    from hublens.analyses.similarity import Similarity
    from hublens.scan import semantic_hub_scan

    sim = semantic_hub_scan(
        mm,
        vision_similarity_data(mm),
        analyses=[Similarity(pairs=[("caption", "solid"), ("caption", "shape")], cues={})],
        progress=progress,
    )
    lens = semantic_hub_scan(
        mm,
        colour_lens_data(mm),
        analyses=[ModalityLens(media="image", baseline_word=BASELINE_COLOUR)],
        progress=progress,
    )
    return sim, lens


def audio_scan(mm: MultimodalModel, *, progress: bool = True) -> Any:
    """Audio↔word similarity per language and the label-word lens."""
    from hublens.analyses.modality_lens import ModalityLens
    from hublens.analyses.similarity import Similarity
    from hublens.scan import semantic_hub_scan

    data = audio_data(mm)
    langs = [t for t in data.types if t.startswith("audio_")]
    sim = semantic_hub_scan(
        mm,
        data,
        analyses=[Similarity(pairs=[("label", t) for t in langs], cues={})],
        progress=progress,
    )
    lens = semantic_hub_scan(  # a distinct data name: ScanResult.combine keys scans by it
        mm,
        data.select(range(len(data)), name="spoken-animals (lens)"),
        analyses=[ModalityLens(name=f"lens_{t}", media=t) for t in langs],
        progress=progress,
    )
    return sim, lens
