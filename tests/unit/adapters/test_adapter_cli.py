"""The adapters' commands are wired into ``hublens`` and parse their options."""

from __future__ import annotations

from hublens.adapters.cli import _layers, cmd_multimodal, cmd_train
from hublens.cli import build_parser


def test_commands_are_registered():
    parser = build_parser()
    train = parser.parse_args(["train-projector", "--modality", "audio", "--steps", "5"])
    assert train.func is cmd_train and train.steps == 5 and train.modality == "audio"
    multi = parser.parse_args(
        ["multimodal", "--modality", "image", "--layers", "2-4", "--alpha", "0.5", "--alpha", "1"]
    )
    assert multi.func is cmd_multimodal and multi.alpha == [0.5, 1.0]
    assert _layers(multi.layers) == [2, 3, 4]
    assert _layers("1,5") == [1, 5]
