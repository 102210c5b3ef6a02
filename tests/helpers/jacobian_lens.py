"""Tiny models and Jacobian lenses fitted by TransformerLens, shared by test_jacobian_*.py."""

from __future__ import annotations

import torch

import hublens
from tests.conftest import build_tiny, build_tokenizer, tiny_config

#: Fit prompts long enough for a few source positions with ``SKIP`` leading ones skipped.
PROMPTS = [
    "The cat sleeps on the warm mat and the dog sleeps by the door.",
    "Le chat dort sur le tapis chaud et le chien dort près de la porte.",
    "three plus two equals five and four times two equals eight",
    "def add(a, b): return [a, b, a + b] and def sub(a, b): return a - b",
    "flower Flower fleur Blume flor, the cat and le chat, 猫在温暖的垫子上睡觉。",
]
HELDOUT = ["Français: fleur - 中文: 花, The cat sleeps.", "3+2=5 and 4*2=8, the warm mat"]
SKIP = 2
MAX_SEQ = 24


def fit_tl(model, prompts=PROMPTS, *, corpus: str = "tiny-test"):
    """TransformerLens's own fit on a HubModel's raw bridge."""
    from transformer_lens.tools.analysis import JacobianLens

    return JacobianLens.fit(
        model.bridge,
        list(prompts),
        corpus=corpus,
        dim_batch=16,
        max_seq_len=MAX_SEQ,
        skip_first_positions=SKIP,
        show_progress=False,
    )


def tiny_model(kind: str, **overrides):
    """(HubModel, reference HF model) of a tiny real architecture; ``overrides`` change the
    config (e.g. ``num_hidden_layers=4``) for a model of another shape."""
    from transformers import Gemma3ForCausalLM, LlamaForCausalLM

    if not overrides:
        hf, reference, tok = build_tiny(kind)
        return hublens.load_model(hf, tok), reference
    tok = build_tokenizer()
    config = tiny_config(kind, len(tok))
    for key, value in overrides.items():
        setattr(config, key, value)
    config._attn_implementation = "eager"
    torch.manual_seed(1)
    cls = {"llama": LlamaForCausalLM, "gemma3": Gemma3ForCausalLM}[kind]
    return hublens.load_model(cls(config).eval(), tok), None
