"""hublens.lenses.artifact: corrupt files, pickles refused unopened, another model refused."""

from __future__ import annotations

import json

import pytest
import torch

from hublens.lenses.artifact import (
    CONFIG,
    TENSORS,
    LensArtifactError,
    ModelFingerprint,
    load_artifact,
    read_config,
    save_artifact,
)

MODEL = {"name": "m", "d_model": 4, "n_layers": 2, "d_vocab": 10, "weights_sha256": "a" * 64}


def _save(tmp_path):
    return save_artifact(
        tmp_path / "lens", {"w": torch.arange(8.0).reshape(2, 4)}, {"kind": "tuned", "model": MODEL}
    )


def test_round_trip(tmp_path):
    tensors, config = load_artifact(_save(tmp_path))
    assert torch.equal(tensors["w"], torch.arange(8.0).reshape(2, 4))
    assert config["format_version"] == 1 and len(config["tensors_sha256"]) == 64


def test_pickle_refused_unopened(tmp_path):
    bad = tmp_path / "lens.pt"
    bad.write_bytes(b"not even opened")
    with pytest.raises(LensArtifactError, match="never unpickles"):
        read_config(bad)
    folder = tmp_path / "pkl"
    folder.mkdir()
    (folder / "params.pt").write_bytes(b"x")
    with pytest.raises(LensArtifactError, match="--convert"):
        read_config(folder)


def test_corrupt_json_and_tensors(tmp_path):
    folder = _save(tmp_path)
    (folder / TENSORS).write_bytes(b"garbage")
    with pytest.raises(LensArtifactError, match="corrupt"):
        load_artifact(folder)
    (folder / CONFIG).write_text("{not json")
    with pytest.raises(LensArtifactError, match="not valid JSON"):
        read_config(folder)


def test_unknown_kind_and_version(tmp_path):
    folder = _save(tmp_path)
    config = json.loads((folder / CONFIG).read_text())
    (folder / CONFIG).write_text(json.dumps({**config, "kind": "magic"}))
    with pytest.raises(LensArtifactError, match="known kinds"):
        read_config(folder)
    (folder / CONFIG).write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(LensArtifactError, match="format_version"):
        read_config(folder)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("d_model", 8, "d_model=4"),
        ("n_layers", 3, "n_layers=2"),
        ("weights_sha256", "b" * 64, "sha256"),
    ],
)
def test_other_model_refused(tmp_path, field, value, match):
    folder = _save(tmp_path)
    fingerprint = ModelFingerprint(**{**MODEL, field: value})
    with pytest.raises(LensArtifactError, match=match):
        fingerprint.check(read_config(folder)["model"], what="the lens")
    # unknown weights hash on one side: shapes decide
    ModelFingerprint(**{**MODEL, "weights_sha256": None}).check(MODEL, what="the lens")


def test_non_finite_refused(tmp_path):
    with pytest.raises(ValueError, match="NaN"):
        save_artifact(
            tmp_path / "x", {"w": torch.tensor([float("nan")])}, {"kind": "tuned", "model": MODEL}
        )
