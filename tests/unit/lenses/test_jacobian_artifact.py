"""Jacobian lens folders: round trip, refusals (other model, corrupt, pickles), convert_pt."""

from __future__ import annotations

import json

import pytest
import torch

from hublens.lenses.artifact import LensArtifactError
from hublens.lenses.jacobian import JacobianLensView, convert_pt
from tests.helpers.jacobian_lens import fit_tl, tiny_model


@pytest.fixture(scope="module")
def llama():
    """(HubModel, TL JacobianLens) of the tiny Llama."""
    model, _ = tiny_model("llama")
    return model, fit_tl(model)


def test_round_trip_keeps_matrices_and_tl_metadata(llama, tmp_path):
    model, tl = llama
    JacobianLensView.from_tl(tl, model, fit={"command": "x"}).save(tmp_path / "l")
    config = json.loads((tmp_path / "l" / "lens.json").read_text())
    assert config["tl"]["metadata"] == tl.metadata  # TL's provenance kept verbatim
    assert config["tl"]["n_prompts"] == tl.n_prompts == 5
    loaded = JacobianLensView.load(tmp_path / "l", model)
    for layer, matrix in tl.jacobians.items():  # fp16 storage: the fp16 rounding, nothing else
        assert torch.equal(loaded.tl_lens.jacobians[layer], matrix.half().float())
    assert loaded.provenance()["fit_command"] == "x"
    assert loaded.provenance()["tensors_sha256"] == config["tensors_sha256"]


@pytest.mark.parametrize(
    "overrides, field",
    [({"num_hidden_layers": 4}, "n_layers"), ({"hidden_size": 32}, "d_model")],
)
def test_lens_of_another_shape_is_refused(llama, tmp_path, overrides, field):
    model, tl = llama
    JacobianLensView.from_tl(tl, model).save(tmp_path / "l")
    if "hidden_size" in overrides:
        overrides = {**overrides, "intermediate_size": 64}
    other, _ = tiny_model("llama", **overrides)
    with pytest.raises(LensArtifactError, match=field):
        JacobianLensView.load(tmp_path / "l", other)
    with pytest.raises(LensArtifactError, match="d_model|source layers"):
        JacobianLensView.from_tl(tl, other)


def test_lens_of_another_architecture_is_refused_by_tl_validation(llama, tmp_path):
    """Same shapes, another model: TL's recorded model name differs (no weights hash here)."""
    model, tl = llama
    gemma, _ = tiny_model("gemma3")
    assert (gemma.d_model, gemma.n_layers, gemma.d_vocab) == (
        model.d_model,
        model.n_layers,
        model.d_vocab,
    )
    JacobianLensView.from_tl(tl, model).save(tmp_path / "l")
    with pytest.raises(LensArtifactError, match="TransformerLens refused.*LlamaForCausalLM"):
        JacobianLensView.load(tmp_path / "l", gemma)


def test_corrupt_folder_is_refused(llama, tmp_path):
    model, tl = llama
    folder = JacobianLensView.from_tl(tl, model).save(tmp_path / "l")
    tensors = folder / "lens.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-5] ^= 0xFF
    tensors.write_bytes(bytes(data))
    with pytest.raises(LensArtifactError, match="corrupt"):
        JacobianLensView.load(folder, model)
    (folder / "lens.json").write_text("{not json")
    with pytest.raises(LensArtifactError, match="not valid JSON"):
        JacobianLensView.load(folder, model)


def test_recorded_layers_must_match_tensors(llama, tmp_path):
    model, tl = llama
    folder = JacobianLensView.from_tl(tl, model).save(tmp_path / "l")
    config = json.loads((folder / "lens.json").read_text())
    config["tl"]["source_layers"] = [0]
    (folder / "lens.json").write_text(json.dumps(config))
    with pytest.raises(LensArtifactError, match="do not match the recorded source layers"):
        JacobianLensView.load(folder, model)


def test_pt_is_refused_except_through_convert_pt(llama, tmp_path):
    model, tl = llama
    pt = tmp_path / "published" / "jacobian_lens.pt"
    pt.parent.mkdir()
    tl.save(str(pt))  # TL's reference-format artifact (fp16)
    with pytest.raises(LensArtifactError, match="pickle.*--convert"):
        JacobianLensView.load(pt, model)
    with pytest.raises(LensArtifactError, match="jacobian_lens.pt: convert"):
        JacobianLensView.load(pt.parent, model)
    view = convert_pt(pt, model, tmp_path / "converted")
    loaded = JacobianLensView.load(tmp_path / "converted", model)
    for layer, matrix in tl.jacobians.items():
        assert torch.equal(loaded.tl_lens.jacobians[layer], matrix.half().float())
    assert loaded.fit["converted_from"]["path"] == str(pt)
    assert view.tl_lens.n_prompts == tl.n_prompts


def test_convert_pt_refuses_a_lens_of_another_model(llama, tmp_path):
    model, tl = llama
    pt = tmp_path / "lens.pt"
    tl.save(str(pt))
    other, _ = tiny_model("llama", num_hidden_layers=4)
    with pytest.raises(LensArtifactError, match="source layers"):
        convert_pt(pt, other, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(LensArtifactError, match="not a file"):
        convert_pt(tmp_path / "missing.pt", model, tmp_path / "out")


def test_a_tuned_folder_is_not_read_as_jacobian(llama, tmp_path):
    from hublens.lenses.artifact import ModelFingerprint, save_artifact

    model, _ = llama
    config = {"kind": "tuned", "model": ModelFingerprint.from_model(model).to_dict()}
    save_artifact(tmp_path / "t", {"A": torch.zeros(1)}, config)
    with pytest.raises(LensArtifactError, match="'tuned' lens"):
        JacobianLensView.load(tmp_path / "t", model)


def test_for_model_finds_the_cached_lens_or_says_how_to_fit(llama, tmp_path, monkeypatch):
    from hublens.lenses.store import cache_folder

    model, tl = llama
    monkeypatch.setenv("HUBLENS_CACHE_DIR", str(tmp_path))
    with pytest.raises(LensArtifactError, match="hublens fit-lens --model .* --kind jacobian"):
        JacobianLensView.for_model(model)
    JacobianLensView.from_tl(tl, model).save(cache_folder(model, "jacobian"))
    assert JacobianLensView.for_model(model).tl_lens.n_prompts == tl.n_prompts
