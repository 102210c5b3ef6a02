"""The patch grid's region-to-position map, against hand computation and torch's pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hublens.analyses.patch_images import (
    PatchGrid,
    RegionImage,
    patch_label_images,
    shape_at,
    two_colour,
)


def test_boxes_equal_a_hand_computation_of_the_3x3_grid():
    # 224 px, 7 feature cells of 32 px; adaptive pooling 7 -> 3 takes cells [0,3), [2,5), [4,7)
    spans = [(0, 96), (64, 160), (128, 224)]
    expected = [(t, b, left, r) for t, b in spans for left, r in spans]  # row-major
    assert PatchGrid().boxes() == expected
    assert PatchGrid(grid=7).boxes()[8] == (32, 64, 32, 64)  # unpooled: row 1, column 1


@pytest.mark.parametrize("grid", [1, 2, 3, 5, 7])
def test_bins_are_the_cells_torch_adaptive_pooling_averages(grid):
    # pool a one-hot 7x7 map per cell; a cell feeds output i exactly when i's bin holds it
    for cell in range(7):
        x = torch.zeros(1, 1, 7, 7)
        x[0, 0, cell, :] = 1.0
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, grid)[0, 0, :, 0]
        feeds = [i for i in range(grid) if pooled[i] > 0]
        bins = PatchGrid(grid=grid).bins()
        assert feeds == [i for i, (a, b) in enumerate(bins) if a <= cell < b]


def test_labels_of_halves_and_a_circle():
    grid = PatchGrid()
    top = two_colour("red", "blue", split="horizontal")
    # rows 0 and 2 of the grid lie in one half; the middle row straddles y = 112 (50/50)
    assert grid.labels(top.label_map) == [0, 0, 0, None, None, None, 1, 1, 1]
    left = two_colour("red", "blue", split="vertical")
    assert grid.labels(left.label_map) == [0, None, 1] * 3
    assert left.position_labels()[:3] == [["red"], None, ["blue"]]
    circle = shape_at("green", "circle", "white", cell=(0, 2))
    labels = grid.labels(circle.label_map)
    assert labels[2] == 1  # the circle's own cell
    assert labels[6] == labels[3] == 0  # far cells: background
    # share by hand: the footprint of cell (0, 2) is rows 0..96, columns 128..224
    box = circle.label_map[0:96, 128:224]
    assert box.mean() >= 0.75
    assert circle.position_labels()[2] == ["green", "circle"]


def test_min_share_leaves_mixed_positions_unlabelled():
    label_map = np.zeros((224, 224), dtype=np.int64)
    label_map[:, 80:] = 1  # columns 0..96: 80/96 region 0; columns 64..160: 80/96 region 1
    assert PatchGrid().labels(label_map, min_share=0.9)[:3] == [None, None, 1]
    assert PatchGrid().labels(label_map, min_share=0.8)[:3] == [0, 1, 1]


def test_bad_sizes_and_options_fail_clearly():
    with pytest.raises(ValueError, match=r"label_map has shape \(100, 100\).*224x224"):
        PatchGrid().labels(np.zeros((100, 100), dtype=np.int64))
    with pytest.raises(ValueError, match="min_share"):
        PatchGrid().labels(np.zeros((224, 224), dtype=np.int64), min_share=0.5)
    with pytest.raises(ValueError, match="grid=9"):
        PatchGrid(grid=9)
    with pytest.raises(ValueError, match="differ in size"):
        RegionImage(
            "k", np.zeros((200, 200, 3), np.uint8), np.zeros((224, 224), np.int64),
            (("red",),), "red", ("red",), "solid",
        )  # fmt: skip
    with pytest.raises(ValueError, match="name every region"):
        RegionImage(
            "k", np.zeros((224, 224, 3), np.uint8), np.ones((224, 224), np.int64),
            (("red",),), "red", ("red",), "solid",
        )  # fmt: skip
    with pytest.raises(ValueError, match="colour 'mauve'"):
        two_colour("mauve", "red")
    with pytest.raises(ValueError, match="kind='star'"):
        shape_at("red", "star", "white")
    with pytest.raises(ValueError, match="n_images"):
        patch_label_images(1)


def test_image_set_is_seeded_and_mixed():
    a, b = patch_label_images(8, seed=5), patch_label_images(8, seed=5)
    assert [x.key for x in a] == [x.key for x in b]
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True))
    assert {x.kind for x in a} == {"two-colour", "shape"}
    for img in a:
        assert img.image.shape == (224, 224, 3) and img.image.dtype == np.uint8
        assert any(img.position_labels())


def test_patch_grid_of_reads_the_encoder_and_refuses_pooled_rows():
    from torch import nn

    from hublens.adapters.base import ModalityAdapter
    from hublens.adapters.efficientnet import EfficientNetEncoder
    from hublens.adapters.projector import MLPProjector, ProjectorConfig
    from hublens.analyses.patch_images import patch_grid_of

    class Holder:
        def __init__(self, encoder, window=1):
            projector = MLPProjector(ProjectorConfig(d_in=4, d_out=4, hidden=4, window=window))
            self.adapters = {"image": ModalityAdapter("image", encoder, projector)}

    assert patch_grid_of(Holder(EfficientNetEncoder(nn.Identity(), grid=3))) == PatchGrid()
    assert patch_grid_of(Holder(EfficientNetEncoder(nn.Identity(), grid=7))) == PatchGrid(grid=7)
    assert patch_grid_of(Holder(EfficientNetEncoder(nn.Identity()), window=2)) is None
    assert patch_grid_of(Holder(nn.Identity())) is None  # layout not declared
    assert patch_grid_of(object()) is None  # a text-only model
