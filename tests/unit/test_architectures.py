"""The architecture matrix: tiny random models of 13 text families through hublens.

Each family is built from its real transformers config (2 layers, d_model 64, random weights
perturbed so norms matter) with the probe tokenizer, loaded in memory and from a saved
safetensors folder, and compared with plain transformers: logits, every layer's state (forward
hooks on the HF layers), a logit-lens readout (the HF final norm and head by hand), steering at
positions (a forward hook on the HF layer by hand), KV-cached = uncached steered generation, and
``hublens.check``.
"""

from __future__ import annotations

import copy

import pytest
import torch

import hublens
from hublens.hooks import (
    ActivationStore,
    AllPositions,
    LastToken,
    LogitLens,
    Positions,
    capture_hooks,
    hook_name,
)
from tests.helpers.probe_tokenizer import probe_tokenizer

TEXTS = ["The cat sleeps on the warm mat.", "Le chat dort.", "猫在睡觉"]
COMMON = dict(bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False)
LLAMA_LIKE = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=128,
    **COMMON,
)


def _config(family: str, vocab: int):
    import transformers as t

    if family == "llama":
        return t.LlamaConfig(vocab_size=vocab, **LLAMA_LIKE)
    if family == "mistral":
        return t.MistralConfig(vocab_size=vocab, sliding_window=None, **LLAMA_LIKE)
    if family == "qwen2":
        return t.Qwen2Config(vocab_size=vocab, **LLAMA_LIKE)
    if family == "qwen3":
        return t.Qwen3Config(vocab_size=vocab, head_dim=16, **LLAMA_LIKE)
    if family == "qwen3_moe":
        return t.Qwen3MoeConfig(
            vocab_size=vocab,
            head_dim=16,
            moe_intermediate_size=32,
            num_experts=4,
            num_experts_per_tok=2,
            decoder_sparse_step=1,
            **LLAMA_LIKE,
        )
    if family == "olmo2":
        return t.Olmo2Config(vocab_size=vocab, **LLAMA_LIKE)
    if family == "phi3":
        return t.Phi3Config(vocab_size=vocab, **LLAMA_LIKE)
    if family == "gemma2":
        return t.Gemma2Config(
            vocab_size=vocab, head_dim=16, sliding_window=8, **{**LLAMA_LIKE, **COMMON}
        )
    if family == "gemma3":
        return t.Gemma3TextConfig(
            vocab_size=vocab,
            head_dim=16,
            sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
            **LLAMA_LIKE,
        )
    if family == "gpt2":
        return t.GPT2Config(
            vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=128, **COMMON
        )
    if family == "gpt_neox":
        return t.GPTNeoXConfig(
            vocab_size=vocab,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            max_position_embeddings=128,
            **COMMON,
        )
    if family == "bloom":
        return t.BloomConfig(vocab_size=vocab, hidden_size=64, n_layer=2, n_head=4, **COMMON)
    if family == "xglm":
        return t.XGLMConfig(
            vocab_size=vocab,
            d_model=64,
            num_layers=2,
            attention_heads=4,
            ffn_dim=128,
            max_position_embeddings=128,
            **COMMON,
        )
    raise ValueError(family)


FAMILIES = [
    "llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "olmo2", "phi3", "gemma2", "gemma3",
    "gpt2", "gpt_neox", "bloom", "xglm",
]  # fmt: skip


def _parts(hf):
    """(decoder layers, final norm) of a plain transformers model, found by family layout."""
    base = hf.base_model
    for layers_name in ("layers", "h"):
        if hasattr(base, layers_name):
            layers = getattr(base, layers_name)
    for norm_name in ("norm", "ln_f", "final_layer_norm", "layer_norm"):
        if hasattr(base, norm_name):
            return layers, getattr(base, norm_name)
    raise AssertionError(f"no final norm found on {type(base).__name__}")


def _build(family: str, seed: int = 0):
    from transformers import AutoModelForCausalLM

    tok = probe_tokenizer()
    config = _config(family, len(tok))
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return hf, copy.deepcopy(hf), tok


@pytest.fixture(scope="module", params=FAMILIES)
def family(request, tmp_path_factory):
    hf, reference, tok = _build(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    model = hublens.load_model(hf, tok)
    at_load = hublens.hooks.attached_hooks(model)  # XGLM's bridge attaches some itself
    yield request.param, model, reference, folder
    assert hublens.hooks.attached_hooks(model) == at_load, "a test left hooks attached"


def _hf_states(reference, batch, hooks=()):
    layers, _ = _parts(reference)
    outputs = {}
    handles = [
        layer.register_forward_hook(
            lambda mod, args, out, i=i: outputs.__setitem__(
                i, out[0] if isinstance(out, tuple) else out
            )
        )
        for i, layer in enumerate(layers)
    ]
    handles += [layers[i].register_forward_hook(fn) for i, fn in hooks]
    try:
        with torch.no_grad():
            logits = reference(input_ids=batch.ids, attention_mask=batch.attention_mask).logits
    finally:
        for h in handles:
            h.remove()
    return logits, outputs


def test_logits_and_states_equal_transformers(family):
    _, model, reference, _ = family
    batch = model.tokenize(TEXTS)
    store = ActivationStore()
    with torch.no_grad(), model.hooks(fwd_hooks=capture_hooks(model, store, where=AllPositions())):
        ours = model(batch.ids, attention_mask=batch.attention_mask)
    theirs, states = _hf_states(reference, batch)
    mask = batch.attention_mask.bool()
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-4, rtol=0)
    for layer in range(model.n_layers):
        assert torch.allclose(
            store.tensor(hook_name(layer))[mask], states[layer][mask], atol=1e-4, rtol=0
        ), layer


def test_lens_readout_equals_hand_computation(family):
    _, model, reference, _ = family
    batch = model.tokenize(TEXTS)
    store = ActivationStore()
    where = LastToken(batch.lengths)
    with (
        torch.no_grad(),
        model.hooks(fwd_hooks=capture_hooks(model, store, layers=[0], where=where)),
    ):
        model(batch.ids, attention_mask=batch.attention_mask)
    h = store.tensor(hook_name(0))  # last token of each row
    ids = torch.tensor([5, 17, 300])
    ours = LogitLens.from_model(model, final_norm=True).readout(h, ids, layer=0).target_logprobs
    _, states = _hf_states(reference, batch)
    rows = states[0][torch.arange(len(TEXTS)), batch.lengths - 1]
    _, norm = _parts(reference)
    with torch.no_grad():
        logits = reference.get_output_embeddings()(norm(rows)).float()
        cap = getattr(reference.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        theirs = torch.log_softmax(logits, -1)[:, ids]
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0)


def test_steering_at_positions_equals_hand_computation(family):
    _, model, reference, _ = family
    batch = model.tokenize(TEXTS[:1])
    vector = torch.randn(model.d_model, generator=torch.Generator().manual_seed(1))
    positions = [1, 3]
    with (
        torch.no_grad(),
        hublens.steer(model, vector, layers=0, scale=2.0, where=Positions(positions)),
    ):
        ours = model(batch.ids, attention_mask=batch.attention_mask)

    def add(mod, args, out):
        hidden = out[0] if isinstance(out, tuple) else out
        hidden = hidden.clone()
        hidden[:, positions] += 2.0 * vector
        return (hidden, *out[1:]) if isinstance(out, tuple) else hidden

    theirs, _ = _hf_states(reference, batch, hooks=[(0, add)])
    plain, _ = _hf_states(reference, batch)
    assert not torch.allclose(theirs, plain, atol=1e-3)  # the steering is visible
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=0)


#: Measured on TransformerLens 4.3 / transformers 5.23 (logits and states still equal HF's).
XGLM_REASON = (
    "TransformerLens 4.3's XGLM bridge attaches hooks of its own at boot "
    "(blocks.{0,1}.mlp.in.hook_in, blocks.{0,1}.mlp.out.hook_out) and its wrapped HF module "
    "returns 5 hidden states for 2 blocks: hooks.before/after and numerics.hidden_states fail"
)


def test_check_passes_and_folder_load_equals(family):
    name, model, reference, folder = family
    loaded = hublens.load_model(folder)
    batch = loaded.tokenize(TEXTS)
    with torch.no_grad():
        ours = loaded(batch.ids, attention_mask=batch.attention_mask)
        theirs = reference(input_ids=batch.ids, attention_mask=batch.attention_mask).logits
    mask = batch.attention_mask.bool()
    assert torch.allclose(ours[mask], theirs[mask], atol=1e-4, rtol=0), name
    report = hublens.check(model)
    if name == "xglm":
        failed = {r.name for r in report.failures()}
        assert failed == {"hooks.before", "hooks.after", "numerics.hidden_states"}, failed
        pytest.xfail(XGLM_REASON)
    assert report.passed, report.to_text()
    assert report["steering.kv_cache"].status == "pass"
