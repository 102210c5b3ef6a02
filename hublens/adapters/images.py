"""Synthetic images with captions: solid colours, coloured shapes, two-colour halves.

Everything is drawn with numpy from a seed, so the training and evaluation sets are
reproducible and need no download.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hublens.adapters.efficientnet import IMAGE_SIZE

#: Colour words and their RGB values.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
    "yellow": (245, 220, 30),
    "orange": (245, 140, 20),
    "purple": (130, 40, 170),
    "pink": (245, 150, 190),
    "brown": (120, 70, 30),
    "gray": (128, 128, 128),
}
SHAPES = ("circle", "square", "triangle")


@dataclass(frozen=True)
class CaptionedImage:
    """One image and its caption.

    Attributes:
        key: A unique key (used as the media key).
        image: ``(224, 224, 3)`` uint8 RGB.
        caption: The English caption, e.g. ``"red"`` or ``"a blue circle"``.
        colours: The colour words it shows (top first for two-colour images).
        kind: ``"solid"``, ``"shape"`` or ``"halves"``.
    """

    key: str
    image: np.ndarray
    caption: str
    colours: tuple[str, ...]
    kind: str


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int) -> np.ndarray:
    return np.clip(np.array(rgb) + rng.integers(-amount, amount + 1, size=3), 0, 255)


def _canvas(rgb: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    image = np.empty((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.float32)
    image[:] = rgb
    image += rng.normal(0.0, noise, size=image.shape)
    return image


def solid(colour: str, *, seed: int = 0, jitter: int = 20, noise: float = 6.0) -> np.ndarray:
    """A solid-colour image with small colour jitter and pixel noise."""
    rng = np.random.default_rng(seed)
    return np.clip(_canvas(_jitter(COLOURS[colour], rng, jitter), rng, noise), 0, 255).astype(
        np.uint8
    )


def halves(top: str, bottom: str, *, seed: int = 0, jitter: int = 15) -> np.ndarray:
    """Top half one colour, bottom half another."""
    rng = np.random.default_rng(seed)
    image = _canvas(_jitter(COLOURS[top], rng, jitter), rng, 4.0)
    image[IMAGE_SIZE // 2 :] = _jitter(COLOURS[bottom], rng, jitter)
    return np.clip(image, 0, 255).astype(np.uint8)


def shape(colour: str, kind: str, background: str, *, seed: int = 0) -> np.ndarray:
    """A coloured shape (circle, square, triangle) on a plain background."""
    rng = np.random.default_rng(seed)
    image = _canvas(_jitter(COLOURS[background], rng, 10), rng, 4.0)
    size = rng.uniform(0.45, 0.75) * IMAGE_SIZE
    cx, cy = rng.uniform(size / 2, IMAGE_SIZE - size / 2, size=2)
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32)
    if kind == "circle":
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= (size / 2) ** 2
    elif kind == "square":
        inside = (abs(xx - cx) <= size / 2) & (abs(yy - cy) <= size / 2)
    elif kind == "triangle":
        top = cy - size / 2
        rel = (yy - top) / size
        inside = (rel >= 0) & (rel <= 1) & (abs(xx - cx) <= rel * size / 2)
    else:
        raise ValueError(f"kind={kind!r}: choose one of {SHAPES}.")
    image[inside] = _jitter(COLOURS[colour], rng, 15)
    return np.clip(image, 0, 255).astype(np.uint8)


def training_images(*, seed: int = 0, per_colour: int = 6) -> list[CaptionedImage]:
    """The projector's training set: solid colours, shapes and two-colour halves.

    Args:
        seed: Seed of everything drawn.
        per_colour: Solid images per colour (shapes and halves scale with it).
    """
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    out: list[CaptionedImage] = []
    for c in names:
        for k in range(per_colour):
            s = int(rng.integers(1 << 31))
            out.append(CaptionedImage(f"solid-{c}-{k}", solid(c, seed=s), c, (c,), "solid"))
    for c in names:
        for k in range(per_colour):
            kind = SHAPES[k % len(SHAPES)]
            bg = str(rng.choice([b for b in ("white", "black", "gray") if b != c]))
            s = int(rng.integers(1 << 31))
            out.append(
                CaptionedImage(
                    f"shape-{c}-{kind}-{k}",
                    shape(c, kind, bg, seed=s),
                    f"a {c} {kind}",
                    (c,),
                    "shape",
                )
            )
    for k in range(per_colour * len(names)):
        top, bottom = rng.choice(names, size=2, replace=False)
        s = int(rng.integers(1 << 31))
        out.append(
            CaptionedImage(
                f"halves-{top}-{bottom}-{k}",
                halves(str(top), str(bottom), seed=s),
                f"{top} and {bottom}",
                (str(top), str(bottom)),
                "halves",
            )
        )
    return out
