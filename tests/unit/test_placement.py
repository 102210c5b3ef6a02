"""load_model's multi-device options: device_map / n_devices reach transformers and TL."""

from __future__ import annotations

import pytest
import torch

import hublens
from hublens.hooks import attached_hooks
from tests.conftest import build_tiny


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    _, reference, tokenizer = build_tiny("llama", seed=7)
    path = tmp_path_factory.mktemp("placed")
    reference.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path, reference


def test_device_map_reaches_from_pretrained_and_logits_match_plain_transformers(
    folder, monkeypatch
):
    from transformers import AutoModelForCausalLM

    path, reference = folder
    real = AutoModelForCausalLM.from_pretrained.__func__
    seen = []

    def spy(cls, *args, **kwargs):  # records, then loads for real
        seen.append(kwargs.get("device_map"))
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", classmethod(spy))
    model = hublens.load_model(path, device_map={"": "cpu"})
    assert seen == [{"": "cpu"}]
    assert "device_map" in model.provenance.device
    ids = model.tokenize("The cat sleeps on the warm mat.").ids
    with torch.no_grad():
        expected = reference(ids).logits
        got = model(ids)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert attached_hooks(model) == []


def test_n_devices_beyond_this_machine_is_refused_before_loading(folder):
    path, _ = folder
    n = torch.cuda.device_count() + 1 if torch.cuda.is_available() else 2
    with pytest.raises(ValueError, match="n_devices"):
        hublens.load_model(path, n_devices=n)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"device_map": "auto", "n_devices": 2}, "one of them"),
        ({"device_map": "auto", "device": "cuda:0"}, "replace device"),
        ({"n_devices": 0}, "positive integer"),
        ({"device_map": 3}, "device_map"),
    ],
)
def test_bad_placement_names_the_argument(folder, kwargs, match):
    path, _ = folder
    with pytest.raises((ValueError, TypeError), match=match):
        hublens.load_model(path, **kwargs)


def test_built_model_with_device_map_says_where_to_place_it():
    hf, _, tokenizer = build_tiny("llama")
    with pytest.raises(TypeError, match="from_pretrained"):
        hublens.load_model(hf, tokenizer, device_map="auto")


def test_hub_names_pass_device_map_through_to_transformer_lens(monkeypatch, tmp_path):
    from transformer_lens.model_bridge import TransformerBridge

    import hublens.loading

    # the local snapshot step (hub names read the local cache only): a stand-in snapshot
    # folder (its weights file is never opened: booting is replaced below)
    (tmp_path / "model.safetensors").write_bytes(b"")
    monkeypatch.setattr(hublens.loading, "_hub_snapshot", lambda name, allow_download: tmp_path)
    seen = {}

    def boot(name, **kwargs):
        seen.update(kwargs, name=name)
        raise OSError("offline: no weights here")

    monkeypatch.setattr(TransformerBridge, "boot_transformers", staticmethod(boot))
    with pytest.raises(hublens.WeightsNotFoundError):
        hublens.load_model("EleutherAI/pythia-14m", device_map={"": "cpu"})
    assert seen["device_map"] == {"": "cpu"} and seen["device"] is None
