"""The architecture matrix's families: tiny random models of 13 text families, plain-HF readers.

Each family is built from its real transformers config (2 layers, d_model 64, random weights
perturbed so norms matter) with the probe tokenizer. The readers here take states from the plain
transformers model only (forward hooks on its decoder layers, its own final norm and head by
hand), never from hublens: they are the independent side of every matrix test.
"""

from __future__ import annotations

import copy

import torch

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

FAMILIES = [
    "llama", "mistral", "qwen2", "qwen3", "qwen3_moe", "olmo2", "phi3", "gemma2", "gemma3",
    "gpt2", "gpt_neox", "bloom", "xglm",
]  # fmt: skip

#: Measured on TransformerLens 4.3 / transformers 5.23 (logits and states still equal HF's).
XGLM_REASON = (
    "TransformerLens 4.3's XGLM bridge attaches hooks of its own at boot "
    "(blocks.{0,1}.mlp.in.hook_in, blocks.{0,1}.mlp.out.hook_out) and its wrapped HF module "
    "returns 5 hidden states for 2 blocks: hooks.before/after and numerics.hidden_states fail"
)


def config(family: str, vocab: int):
    """The tiny config of one family (a real transformers config class)."""
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


def parts(hf):
    """(decoder layers, final norm) of a plain transformers model, found by family layout."""
    base = hf.base_model
    for layers_name in ("layers", "h"):
        if hasattr(base, layers_name):
            layers = getattr(base, layers_name)
    for norm_name in ("norm", "ln_f", "final_layer_norm", "layer_norm"):
        if hasattr(base, norm_name):
            return layers, getattr(base, norm_name)
    raise AssertionError(f"no final norm found on {type(base).__name__}")


def build(family: str, seed: int = 0):
    """(model, an untouched deep copy, tokenizer): weights random, perturbed by N(0, 0.05)."""
    from transformers import AutoModelForCausalLM

    tok = probe_tokenizer()
    cfg = config(family, len(tok))
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    hf = AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return hf, copy.deepcopy(hf), tok


def hf_states(reference, batch, hooks=()):
    """(logits, {layer: output of decoder layer}) of plain HF, with extra ``(layer, fn)`` hooks."""
    layers, _ = parts(reference)
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


def text_ids(tokenizer, text: str, *, bos: bool = True) -> torch.Tensor:
    """(1, pos) ids of one text by the tokenizer itself, BOS first (the matrix models' policy)."""
    ids = tokenizer.encode(text, add_special_tokens=False)
    return torch.tensor([[tokenizer.bos_token_id, *ids] if bos else ids])


def layer_states(reference, ids: torch.Tensor) -> torch.Tensor:
    """(layer, pos, d) fp32 outputs of every decoder layer for one row (plain HF, hooks)."""
    batch = type("Row", (), {"ids": ids, "attention_mask": torch.ones_like(ids)})
    _, outputs = hf_states(reference, batch)
    return torch.stack([outputs[i][0] for i in range(len(outputs))]).float()


def lens_logprobs(reference, h: torch.Tensor) -> torch.Tensor:
    """fp32 log-probs of the HF final norm + head (+ soft-cap) applied by hand to rows ``h``."""
    _, norm = parts(reference)
    with torch.no_grad():
        logits = reference.get_output_embeddings()(norm(h)).float()
        cap = getattr(reference.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return torch.log_softmax(logits, -1)
