"""The bundled real models through hublens against plain transformers on the same weights."""

from __future__ import annotations

import shutil

import pytest
import torch

import hublens
from hublens.analyses import translation_readout
from hublens.cache import cache_root
from hublens.hooks import ActivationStore, AllPositions, LogitLens, capture_hooks, hook_name
from tests.helpers.tolerance import reference_lens_atol

pytestmark = pytest.mark.integration

TEXTS = [
    "The cat sleeps on the warm mat.",
    "猫在温暖的垫子上睡觉。",
    'Français: "fleur" - 中文: "',
    "5=3+",
]


def _reference(reference, batch, **kwargs):
    with torch.no_grad():
        return reference(input_ids=batch.ids, attention_mask=batch.attention_mask, **kwargs)


def _ties_only(logprobs: torch.Tensor, ids: torch.Tensor, atol: float) -> bool:
    """Whether top-k ids that differ from the reference's differ only among near-ties."""
    top = logprobs.topk(ids.shape[-1], -1)
    return bool(((logprobs.gather(-1, ids) - top.values).abs() < atol).all())


# The logits, captures and final norm below come from the SAME transformers modules and kernels
# on both sides (the bridge wraps the HF model; measured: bit-identical on Gemma-3-270M and
# SmolLM2-135M). 1e-4 (relative to the magnitude of the compared values) is a guard for a
# wrapped module that computes differently, not a rounding budget.
def test_logits_equal_transformers_on_the_same_gguf(bundled):
    model, reference, _ = bundled
    batch = model.tokenize(TEXTS)
    with torch.no_grad():
        ours = model(batch.ids, attention_mask=batch.attention_mask)
    theirs = _reference(reference, batch).logits
    mask = batch.attention_mask.bool()
    assert (ours[mask] - theirs[mask]).abs().max().item() < 1e-4


def test_capture_every_layer_equals_hidden_states(bundled):
    model, reference, _ = bundled
    batch = model.tokenize(TEXTS)
    store = ActivationStore()
    with torch.no_grad(), model.hooks(fwd_hooks=capture_hooks(model, store, where=AllPositions())):
        model(batch.ids, attention_mask=batch.attention_mask)
    hidden = _reference(reference, batch, output_hidden_states=True).hidden_states
    mask = batch.attention_mask.bool()
    for layer in range(model.n_layers - 1):
        got, want = store.tensor(hook_name(layer))[mask], hidden[layer + 1][mask]
        assert (got - want).abs().max().item() < 1e-4 * max(1.0, want.abs().max().item()), layer
    # transformers' last hidden state is after the final norm.
    last = store.tensor(hook_name(model.n_layers - 1))
    normed = reference.model.norm(last)[mask]
    assert (normed - hidden[-1][mask]).abs().max().item() < 1e-4


def test_lens_at_last_layer_equals_model_logprobs(bundled):
    model, reference, _ = bundled
    batch = model.tokenize(TEXTS)
    store = ActivationStore()
    last = model.n_layers - 1
    with (
        torch.no_grad(),
        model.hooks(fwd_hooks=capture_hooks(model, store, layers=last, where=AllPositions())),
    ):
        model(batch.ids, attention_mask=batch.attention_mask)
    expected = torch.log_softmax(_reference(reference, batch).logits.float(), -1)
    mask = batch.attention_mask.bool()
    rows = store.tensor(hook_name(last))[mask]
    targets = torch.tensor([0, 1, 2, 100, 1000, model.d_vocab - 1])
    out = LogitLens.from_model(model).readout(rows, targets, top_k=10)
    # Two fp32 log-softmax implementations over the vocabulary: the bound is derived in
    # tests/helpers/tolerance.py (1.5e-3 on Gemma, 2.5e-3 on SmolLM2; issue 16).
    atol = reference_lens_atol(reference, rows)
    assert (out.target_logprobs - expected[mask][:, targets]).abs().max().item() < atol
    top = expected[mask].topk(10, -1)
    assert (out.top_logprobs - top.values).abs().max().item() < atol
    assert torch.equal(out.top_ids, top.indices) or _ties_only(expected[mask], out.top_ids, atol)


def test_bos_policy_and_leading_space(bundled):
    model, _, name = bundled
    ids = model.tokenize("flower").ids[0].tolist()
    if name == "gemma-3-270m":
        assert model.prepend_bos and ids[0] == model.tokenizer.bos_token_id == 2
        assert model.convention.space_marker == "▁"
    else:
        assert not model.prepend_bos and model.tokenizer.bos_token_id not in ids
        assert model.convention.space_marker == "Ġ"
    spaced = model.tokenizer.convert_ids_to_tokens(model.word_token_ids("flower"))
    assert spaced[0].startswith(model.convention.space_marker)
    bare = model.tokenizer.convert_ids_to_tokens(
        model.word_token_ids("flower", leading_space=False)
    )
    assert not bare[0].startswith(model.convention.space_marker)


def test_translation_prompt_reads_english_in_the_middle(gemma):
    """PAPER.md: for FR->ZH, English beats Chinese at a middle layer; Chinese wins at the end."""
    readout = translation_readout(
        gemma, 'Français: "fleur" - 中文: "', {"zh": "花", "en": "flower"}
    )
    zh, en = readout.probs[:, 0], readout.probs[:, 1]
    assert zh[-1] > en[-1]
    middle = range(gemma.n_layers // 2, gemma.n_layers - 2)
    assert any(en[i] > zh[i] and en[i] > 1e-3 for i in middle)


def test_user_gguf_file_cache_and_corruption(tmp_path, monkeypatch):
    """A user's .gguf builds its own verified cache; damage is detected; rebuild repairs it."""
    from tests.integration.conftest import gguf_path

    monkeypatch.setenv("HUBLENS_CACHE_DIR", str(tmp_path / "cache"))
    path = gguf_path("smollm2-135m", tmp_path)
    model = hublens.load_model(path)
    assert model.provenance.source == "gguf" and model.provenance.weights_sha256
    entry = next(p for p in cache_root().iterdir() if p.name.startswith("gguf-"))
    ids = model.tokenize("The cat sleeps.").ids
    with torch.no_grad():
        before = model(ids)
    del model

    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit in the middle of the weights
    weights.write_bytes(bytes(data))
    with pytest.raises(hublens.CacheError, match="corrupt"):
        hublens.load_model(path)
    weights.write_bytes(bytes(data[: len(data) // 3]))  # a load killed half-way through a copy
    with pytest.raises(hublens.CacheError, match="truncated"):
        hublens.load_model(path)

    repaired = hublens.load_model(path, rebuild_cache=True)
    with torch.no_grad():
        assert torch.equal(repaired(ids), before)


def test_bundled_cache_corruption_is_an_error(tmp_path, monkeypatch):
    version = hublens.BUNDLED["smollm2-135m"].package_version()
    source = cache_root() / f"smollm2-135m-{version}-fp32"
    hublens.load_model("smollm2-135m")  # make sure the entry exists
    copy = tmp_path / "cache"
    shutil.copytree(source, copy / source.name)
    monkeypatch.setenv("HUBLENS_CACHE_DIR", str(copy))
    (copy / source.name / "tokenizer.json").write_text("{}")
    with pytest.raises(hublens.CacheError, match="tokenizer.json"):
        hublens.load_model("smollm2-135m")
