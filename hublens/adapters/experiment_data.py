"""Held-out data of the paper's vision and audio experiments on a MultimodalModel.

Data are generated here (held-out seeds, never the training keys): solid colours and shapes
with their colour word; espeak-ng animal names in four languages with the English word. Media
are registered on the model (``mm.add_media``); the same seed reuses the same media key.
"""

from __future__ import annotations

import random
from typing import Any

from hublens.adapters.base import MultimodalModel
from hublens.data import ParallelData

#: Colours of the paper's lens experiment and its baseline word.
LENS_COLOURS = ("red", "green", "blue", "black")
BASELINE_COLOUR = "white"


def vision_similarity_data(mm: MultimodalModel, *, seed: int = 1000) -> ParallelData:
    """One item per colour: a solid image, a shape image, and the colour word."""
    from hublens.adapters.images import COLOURS, SHAPES, shape, solid

    rng = random.Random(seed)
    records: list[dict[str, Any]] = []
    for k, colour in enumerate(COLOURS):
        s = mm.add_media("image", solid(colour, seed=seed + k), key=f"eval-solid-{colour}")
        bg = "black" if colour in ("white", "yellow", "pink") else "white"
        kind = SHAPES[k % len(SHAPES)]
        h = mm.add_media(
            "image", shape(colour, kind, bg, seed=seed + 100 + k), key=f"eval-shape-{colour}"
        )
        records.append(
            {
                "id": colour,
                "caption": colour,
                "solid": s,
                "shape": h,
                "meta": {"label": colour, "shape": kind},
            }
        )
    rng.shuffle(records)
    return ParallelData.from_records(records, name="colour-images")


def colour_lens_data(mm: MultimodalModel, *, per_colour: int = 5, seed: int = 2000) -> ParallelData:
    """Solid red/green/blue/black images (held out), ``per_colour`` each."""
    from hublens.adapters.images import solid

    records: list[dict[str, Any]] = []
    for colour in LENS_COLOURS:
        for k in range(per_colour):
            marker = mm.add_media(
                "image", solid(colour, seed=seed + 10 * k + len(records)), key=f"lens-{colour}-{k}"
            )
            records.append(
                {
                    "id": f"{colour}-{k}",
                    "image": marker,
                    "caption": colour,
                    "meta": {"label": colour},
                }
            )
    return ParallelData.from_records(records, name="solid-colours")


def audio_data(mm: MultimodalModel, *, seed: int = 1000) -> ParallelData:
    """One item per animal: its name spoken in en/fr/de/es (held-out voices) + the word."""
    from hublens.adapters.speech import ANIMALS, LANGUAGES, MAMMALS, spoken_words

    clips = spoken_words(seed=seed, per_word=1, prefix=f"eval{seed}")
    by = {(c.label, c.language): c for c in clips}
    records = []
    for label in ANIMALS:
        record: dict[str, Any] = {"id": label, "label": label}
        for lang in LANGUAGES:
            clip = by[(label, lang)]
            if clip.key in mm.media["audio"]:  # same seed, same clip: reuse it
                record[f"audio_{lang}"] = f"<audio:{clip.key}>"
            else:
                record[f"audio_{lang}"] = mm.add_media(
                    "audio", (clip.waveform, clip.sample_rate), key=clip.key
                )
        record["meta"] = {"label": label, "mammal": label in MAMMALS}
        records.append(record)
    return ParallelData.from_records(records, name="spoken-animals")
