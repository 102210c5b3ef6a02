"""Saving, loading and finding tuned lenses; lenses of other models and damaged files refused."""

from __future__ import annotations

import json

import pytest
import torch

import hublens
from hublens.hooks.readout import Unembed
from hublens.lenses.artifact import CONFIG, TENSORS, LensArtifactError, ModelFingerprint
from hublens.lenses.store import cache_folder, find_lens, missing_lens_message
from hublens.lenses.tuned import TunedLens
from tests.conftest import build_tokenizer, tiny_config


def _lens(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    n, d = model.n_layers, model.d_model
    return TunedLens(
        Unembed.from_model(model),
        torch.randn(n - 1, d, d, generator=g) * 0.05,
        torch.randn(n - 1, d, generator=g) * 0.05,
        fingerprint=ModelFingerprint.from_model(model),
        fit={
            "command": "hublens fit-lens test",
            "seed": 0,
            "corpus": {"name": "c", "sha256": "ab"},
        },
    )


def test_round_trip_fp32_exact_fp16_rounded(tiny_llama, tmp_path):
    model, _ = tiny_llama
    lens = _lens(model)
    lens.save(tmp_path / "fp32", dtype=torch.float32)
    back = TunedLens.load(tmp_path / "fp32", model)
    assert torch.equal(back.translator_weight, lens.translator_weight)
    lens.save(tmp_path / "fp16")
    half = TunedLens.load(tmp_path / "fp16", model)
    assert torch.equal(half.translator_weight, lens.translator_weight.half().float())
    config = json.loads((tmp_path / "fp16" / CONFIG).read_text())
    assert config["kind"] == "tuned" and config["dtype"] == "float16"
    assert config["identity_layers"] == [model.n_layers - 1]
    prov = half.provenance()
    assert prov["command"] == "hublens fit-lens test" and prov["corpus_sha256"] == "ab"
    assert prov["tensors_sha256"] == config["tensors_sha256"]


def test_lens_of_another_model_is_refused(tiny_llama, tmp_path):
    model, _ = tiny_llama
    _lens(model).save(tmp_path / "lens")
    from transformers import LlamaForCausalLM

    tok = build_tokenizer()
    config = tiny_config("llama", len(tok))
    config.num_hidden_layers = 4
    other = hublens.load_model(LlamaForCausalLM(config).eval(), tok)
    with pytest.raises(LensArtifactError, match="n_layers=3"):
        TunedLens.load(tmp_path / "lens", other)
    # a recorded weights hash that differs is refused too
    path = tmp_path / "lens" / CONFIG
    config_json = json.loads(path.read_text())
    config_json["model"]["weights_sha256"] = "0" * 64
    path.write_text(json.dumps(config_json))
    fingerprint = ModelFingerprint(**{**config_json["model"], "weights_sha256": "1" * 64})
    with pytest.raises(LensArtifactError, match="sha256"):
        fingerprint.check(config_json["model"], what="the lens")


def test_corrupt_and_missing_files_are_refused(tiny_llama, tmp_path):
    model, _ = tiny_llama
    folder = _lens(model).save(tmp_path / "lens")
    data = bytearray((folder / TENSORS).read_bytes())
    data[-3] ^= 0xFF
    (folder / TENSORS).write_bytes(bytes(data))
    with pytest.raises(LensArtifactError, match="corrupt"):
        TunedLens.load(folder, model)
    with pytest.raises(LensArtifactError, match="does not exist"):
        TunedLens.load(tmp_path / "nowhere", model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LensArtifactError, match="not a hublens lens folder"):
        TunedLens.load(tmp_path / "empty", model)


def test_last_layer_translator_refused(tiny_llama, tmp_path):
    model, _ = tiny_llama
    n, d = model.n_layers, model.d_model
    with pytest.raises(ValueError, match=f"weight \\({n - 1}, {d}, {d}\\)"):
        TunedLens(
            Unembed.from_model(model),
            torch.zeros(n, d, d),
            torch.zeros(n, d),
            fingerprint=ModelFingerprint.from_model(model),
        )


def test_for_model_finds_the_cache_and_says_how_to_fit(tiny_llama, tmp_path, monkeypatch):
    model, _ = tiny_llama
    monkeypatch.setenv("HUBLENS_CACHE_DIR", str(tmp_path))
    assert find_lens(model, "tuned") is None
    message = missing_lens_message(model, "tuned")
    assert "hublens fit-lens --model object --kind tuned --out" in message
    with pytest.raises(LensArtifactError, match="fit-lens"):
        TunedLens.for_model(model)
    lens = _lens(model)
    lens.save(cache_folder(model, "tuned"))
    found = TunedLens.for_model(model)
    assert torch.equal(found.translator_bias, lens.translator_bias.half().float())
    with pytest.raises(ValueError, match="kind="):
        find_lens(model, "tunned")
