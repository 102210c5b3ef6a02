"""Tiny random LLaVA-NeXT, Gemma-3 multimodal and Qwen2.5-VL models from real transformers configs.

A copy of the probe-word tokenizer (``hublens.check``'s tokenization checks pass on it) gains the
image, vision-start/end and BOI/EOI tokens as special tokens;
each model is perturbed by N(0, 0.05) so norms matter, and an untouched deep copy is the
reference.
"""

from __future__ import annotations

import copy

import torch

from tests.helpers.probe_tokenizer import probe_tokenizer

SPECIAL = ["<image>", "<vision_start>", "<vision_end>", "<boi>", "<eoi>"]


def tokenizer():
    """A copy of the probe tokenizer plus the multimodal special tokens."""
    tok = copy.deepcopy(probe_tokenizer())
    tok.add_special_tokens({"additional_special_tokens": SPECIAL})
    return tok


def _text(vocab: int) -> dict:
    return dict(
        vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    )  # fmt: skip


def config(family: str, tok):
    """The tiny config of ``"llava_next"``, ``"gemma3"`` or ``"qwen2_5_vl"``."""
    import transformers as t

    image, start, end, boi, eoi = tok.convert_tokens_to_ids(SPECIAL)
    if family == "llava_next":
        vision = t.CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=16, patch_size=4, projection_dim=32,
        )  # fmt: skip
        return t.LlavaNextConfig(
            vision_config=vision, text_config=t.LlamaConfig(**_text(len(tok))),
            image_token_id=image, image_grid_pinpoints=[[16, 32], [32, 16], [32, 32]],
            vision_feature_layer=-2, vision_feature_select_strategy="default",
            tie_word_embeddings=False,
        )  # fmt: skip
    if family == "gemma3":
        vision = t.SiglipVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=16, patch_size=4,
        )  # fmt: skip
        text = t.Gemma3TextConfig(
            **_text(len(tok)), head_dim=16, sliding_window=8,
            layer_types=["sliding_attention", "full_attention"],
        )  # fmt: skip
        return t.Gemma3Config(
            vision_config=vision, text_config=text, mm_tokens_per_image=4,
            image_token_index=image, boi_token_index=boi, eoi_token_index=eoi,
            tie_word_embeddings=False,
        )  # fmt: skip
    if family == "qwen2_5_vl":
        rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
        return t.Qwen2_5_VLConfig(
            text_config=dict(model_type="qwen2_5_vl_text", **_text(len(tok)),
                             rope_parameters=rope),
            vision_config=dict(
                depth=2, hidden_size=32, intermediate_size=64, num_heads=4, out_hidden_size=64,
                patch_size=4, spatial_merge_size=2, temporal_patch_size=2, window_size=8,
                fullatt_block_indexes=[1], in_channels=3,
            ),
            image_token_id=image, vision_start_token_id=start, vision_end_token_id=end,
            video_token_id=eoi, tie_word_embeddings=False,
        )  # fmt: skip
    raise ValueError(family)


def build(family: str, seed: int = 0):
    """(model, untouched deep copy, tokenizer) of one multimodal family."""
    import transformers as t

    tok = tokenizer()
    cfg = config(family, tok)
    cfg._attn_implementation = "eager"
    cls = {
        "llava_next": t.LlavaNextForConditionalGeneration,
        "gemma3": t.Gemma3ForConditionalGeneration,
        "qwen2_5_vl": t.Qwen2_5_VLForConditionalGeneration,
    }[family]
    torch.manual_seed(seed)
    hf = cls(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return hf, copy.deepcopy(hf), tok
