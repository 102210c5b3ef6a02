"""Synthetic images whose regions are known by construction, and the patch grid reading them.

An image comes with a pixel label map (region index per pixel) and the words naming each
region (``("red",)`` for a red half, ``("red", "circle")`` for a red circle). The vision
instance (:func:`hublens.adapters.instances.load_vision_model`) reads a 224x224 image as
EfficientNet-Lite0's 7x7 feature map (stride 32) average-pooled to a 3x3 grid, row-major from
the top-left: position ``k`` of the image span is grid cell ``(k // 3, k % 3)``.
:class:`PatchGrid` gives each position its nominal pixel footprint (the feature cells that
torch's ``adaptive_avg_pool2d`` averages into it, 32 pixels per cell; the receptive field
of the network is larger) and labels a position with the region covering at least
``min_share`` of its footprint; other positions (e.g. the middle row of a top/bottom split)
carry no label and are not scored.

Everything is drawn with numpy from a seed; no download.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hublens.adapters.efficientnet import FEATURE_GRID, GRID, IMAGE_SIZE
from hublens.adapters.images import COLOURS

#: Colours of the two-colour images, of the shapes, and the shapes' backgrounds.
PAIR_COLOURS = ("red", "green", "blue", "yellow", "black", "white")
SHAPE_COLOURS = ("red", "green", "blue", "yellow")
BACKGROUNDS = ("white", "black", "gray")
PATCH_SHAPES = ("circle", "square")


@dataclass(frozen=True)
class PatchGrid:
    """Where each image position sits: a ``grid x grid`` pooling of a feature map.

    The defaults are the vision instance's (:mod:`hublens.adapters.efficientnet`).

    Attributes:
        image_size: Side of the square image in pixels.
        feature_grid: Side of the encoder's feature map (pixels per cell: image_size / it).
        grid: Side of the pooled grid (the image positions, ``grid**2`` of them).

    Example:
        >>> PatchGrid().boxes()[4]  # the centre position of the 3x3 grid
        (64, 160, 64, 160)
    """

    image_size: int = IMAGE_SIZE
    feature_grid: int = FEATURE_GRID
    grid: int = GRID

    def __post_init__(self) -> None:
        if not 1 <= self.grid <= self.feature_grid:
            raise ValueError(f"grid={self.grid}: choose 1..feature_grid={self.feature_grid}.")
        if self.image_size % self.feature_grid:
            raise ValueError(
                f"image_size={self.image_size} is not a multiple of feature_grid="
                f"{self.feature_grid}; pass sizes whose cells are whole pixels."
            )

    @property
    def n_positions(self) -> int:
        """Image positions (``grid**2``)."""
        return self.grid * self.grid

    def bins(self) -> list[tuple[int, int]]:
        """Feature cells ``[start, stop)`` pooled into each grid index (adaptive pooling rule)."""
        f, g = self.feature_grid, self.grid
        return [(math.floor(i * f / g), math.ceil((i + 1) * f / g)) for i in range(g)]

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """Pixel footprint ``(top, bottom, left, right)`` of each position, row-major."""
        cell = self.image_size // self.feature_grid
        spans = [(a * cell, b * cell) for a, b in self.bins()]
        return [(t, b, left, right) for t, b in spans for left, right in spans]

    def labels(self, label_map: np.ndarray, *, min_share: float = 0.75) -> list[int | None]:
        """Per position, the region covering at least ``min_share`` of its footprint, or None.

        Args:
            label_map: ``(image_size, image_size)`` region index per pixel (ints >= 0).
            min_share: Share of the footprint the region must cover (above 0.5).

        Raises:
            ValueError: Wrong map shape or a share outside (0.5, 1].
        """
        if not 0.5 < min_share <= 1.0:
            raise ValueError(f"min_share={min_share}: choose a share in (0.5, 1].")
        side = self.image_size
        if label_map.shape != (side, side):
            raise ValueError(
                f"label_map has shape {label_map.shape}; this grid reads ({side}, {side}) "
                f"images: draw the image at {side}x{side}."
            )
        out: list[int | None] = []
        for top, bottom, left, right in self.boxes():
            counts = np.bincount(label_map[top:bottom, left:right].ravel())
            best = int(counts.argmax())
            out.append(best if counts[best] >= min_share * counts.sum() else None)
        return out


@dataclass(frozen=True)
class RegionImage:
    """An image, its regions and its caption.

    Attributes:
        key: Unique media key.
        image: ``(224, 224, 3)`` uint8 RGB.
        label_map: ``(224, 224)`` region index per pixel.
        regions: Words naming each region (any of them counts as the region's label).
        caption: The English caption (as the projector was trained: ``"red and blue"``,
            ``"a red circle"``).
        nouns: The caption's content words (the paper's caption nouns).
        kind: ``"two-colour"`` or ``"shape"``.
    """

    key: str
    image: np.ndarray
    label_map: np.ndarray
    regions: tuple[tuple[str, ...], ...]
    caption: str
    nouns: tuple[str, ...]
    kind: str

    def __post_init__(self) -> None:
        if self.image.ndim != 3 or self.image.shape[:2] != self.label_map.shape:
            raise ValueError(
                f"image {self.image.shape} and label_map {self.label_map.shape} differ in "
                "size: draw both at the same size."
            )
        used = int(self.label_map.max()) + 1
        if self.label_map.min() < 0 or used > len(self.regions):
            raise ValueError(
                f"label_map holds region indices 0..{used - 1} but {len(self.regions)} regions "
                "are named: name every region."
            )

    def position_labels(
        self, grid: PatchGrid | None = None, *, min_share: float = 0.75
    ) -> list[list[str] | None]:
        """Each position's region words (None: no region covers enough of it)."""
        idx = (grid or PatchGrid()).labels(self.label_map, min_share=min_share)
        return [None if k is None else list(self.regions[k]) for k in idx]


def _paint(label_map: np.ndarray, colours: Sequence[str], rng: np.random.Generator) -> np.ndarray:
    image = np.empty((*label_map.shape, 3), dtype=np.float32)
    for k, colour in enumerate(colours):
        rgb = np.array(COLOURS[colour]) + rng.integers(-15, 16, size=3)
        image[label_map == k] = rgb
    image += rng.normal(0.0, 4.0, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def two_colour(
    first: str, second: str, *, split: str = "horizontal", seed: int = 0, size: int = 224
) -> RegionImage:
    """Two halves: ``first`` on top (``split="horizontal"``) or on the left (``"vertical"``)."""
    for c in (first, second):
        if c not in COLOURS:
            raise ValueError(f"colour {c!r}: choose from {sorted(COLOURS)}.")
    if split not in ("horizontal", "vertical"):
        raise ValueError(f"split={split!r}: choose 'horizontal' (top/bottom) or 'vertical'.")
    yy, xx = np.mgrid[0:size, 0:size]
    label_map = ((yy if split == "horizontal" else xx) >= size // 2).astype(np.int64)
    image = _paint(label_map, (first, second), np.random.default_rng(seed))
    return RegionImage(
        f"patch-{first}-{second}-{split[0]}-{seed}", image, label_map,
        ((first,), (second,)), f"{first} and {second}", (first, second), "two-colour",
    )  # fmt: skip


def shape_at(
    colour: str,
    kind: str,
    background: str,
    *,
    cell: tuple[int, int] = (1, 1),
    seed: int = 0,
    grid: PatchGrid | None = None,
) -> RegionImage:
    """A circle (radius 52 px) or square (side 88 px) centred on one grid cell's footprint."""
    grid = grid or PatchGrid()
    if kind not in PATCH_SHAPES:
        raise ValueError(f"kind={kind!r}: choose one of {PATCH_SHAPES}.")
    if not all(0 <= c < grid.grid for c in cell):
        raise ValueError(f"cell={cell}: rows and columns are 0..{grid.grid - 1}.")
    top, bottom, left, right = grid.boxes()[cell[0] * grid.grid + cell[1]]
    cy, cx = (top + bottom - 1) / 2, (left + right - 1) / 2
    side = grid.image_size
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    if kind == "circle":
        inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= 52.0**2
    else:
        inside = (np.abs(yy - cy) <= 44.0) & (np.abs(xx - cx) <= 44.0)
    label_map = inside.astype(np.int64)
    image = _paint(label_map, (background, colour), np.random.default_rng(seed))
    return RegionImage(
        f"patch-{colour}-{kind}-{cell[0]}{cell[1]}-{seed}", image, label_map,
        ((background,), (colour, kind)), f"a {colour} {kind}", (colour, kind), "shape",
    )  # fmt: skip


def patch_label_images(n_images: int = 24, *, seed: int = 3000) -> list[RegionImage]:
    """A seeded set: half two-colour images (both splits), half shapes at random cells.

    Args:
        n_images: How many (at least 2).
        seed: Seed of colours, placements and pixel noise (held out from the projector's
            training seeds).
    """
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 2:
        raise ValueError(f"n_images={n_images!r}: pass an int >= 2.")
    rng = random.Random(seed)
    out: list[RegionImage] = []
    for k in range(n_images):
        if k % 2 == 0:
            first, second = rng.sample(PAIR_COLOURS, 2)
            split = "horizontal" if k % 4 == 0 else "vertical"
            out.append(two_colour(first, second, split=split, seed=seed + k))
        else:
            colour = rng.choice(SHAPE_COLOURS)
            bg = rng.choice(BACKGROUNDS)
            kind = PATCH_SHAPES[(k // 2) % len(PATCH_SHAPES)]
            cell = (rng.randrange(3), rng.randrange(3))
            out.append(shape_at(colour, kind, bg, cell=cell, seed=seed + k))
    return out


def patch_grid_of(mm: Any) -> PatchGrid | None:
    """The patch layout of a model's image positions, or None when it is not known.

    Known for a split :class:`~hublens.adapters.base.ModalityAdapter` whose projector keeps one
    row per encoder row (``window`` 1) and whose encoder is EfficientNet-Lite0 (its ``grid``)
    or declares a ``patch_grid`` attribute (a :class:`PatchGrid`).
    """
    from hublens.adapters.base import ModalityAdapter
    from hublens.adapters.efficientnet import EfficientNetEncoder

    adapter = (getattr(mm, "adapters", None) or {}).get("image")
    if not isinstance(adapter, ModalityAdapter):
        return None
    config = getattr(adapter.projector, "config", None)
    if getattr(config, "window", 1) != 1:
        return None
    declared = getattr(adapter.encoder, "patch_grid", None)
    if isinstance(declared, PatchGrid):
        return declared
    if isinstance(adapter.encoder, EfficientNetEncoder):
        return PatchGrid(grid=adapter.encoder.grid)
    return None


def patch_label_data(
    mm: Any,
    images: Sequence[RegionImage],
    *,
    grid: PatchGrid | None = None,
    min_share: float = 0.75,
    prompt: str = "{image}",
) -> Any:
    """Register the images on ``mm`` and build the data :class:`PatchLabels` reads.

    Each item's meta holds ``patch_labels`` (per image position: its region words or None),
    ``nouns`` (the caption's), ``caption`` and ``kind``. A key already registered (the same
    image again) is reused.

    Args:
        mm: A MultimodalModel with an ``"image"`` adapter.
        images: The images.
        grid: The instance's patch grid (default: 224 px, 7x7 features pooled to 3x3).
        min_share: Footprint share a region needs to label a position.
        prompt: The text around the image (``{image}`` is replaced by the marker).
    """
    from hublens.data import ParallelData

    if "{image}" not in prompt:
        raise ValueError(f"prompt={prompt!r} must contain '{{image}}' (where the image goes).")
    records = []
    for img in images:
        registry = mm.media.get("image", {})
        marker = f"<image:{img.key}>" if img.key in registry else None
        marker = marker or mm.add_media("image", img.image, key=img.key)
        records.append({
            "id": img.key,
            "image": prompt.replace("{image}", marker),
            "caption": img.caption,
            "meta": {
                "patch_labels": img.position_labels(grid, min_share=min_share),
                "nouns": list(img.nouns), "caption": img.caption, "kind": img.kind,
            },
        })  # fmt: skip
    return ParallelData.from_records(records, name="patch-label-images")
