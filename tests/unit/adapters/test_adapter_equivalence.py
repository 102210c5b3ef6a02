"""The adapter's logits equal transformers' own LLaVA and Qwen2-Audio forwards (tiny configs)."""

from __future__ import annotations

import copy

import pytest
import torch

from hublens.adapters.llava import from_llava
from hublens.adapters.qwen2_audio import from_qwen2_audio
from hublens.hooks import attached_hooks
from tests.conftest import build_tokenizer

PLACEHOLDER = 3  # <unk> of the tiny tokenizer: the id transformers' models look for


def _perturb(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _text_config(vocab_size, kind="llama"):
    from transformers import LlamaConfig, Qwen2Config

    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[kind]
    return cls(
        vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False,
    )


def _reference_ids(batch, placeholder=PLACEHOLDER):
    ids = batch.ids.clone()
    ids[batch.mask()] = placeholder
    return ids


@pytest.fixture(scope="module")
def tiny_llava():
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

    tok = build_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        image_size=16, patch_size=4, projection_dim=32,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=_text_config(len(tok)), image_token_id=PLACEHOLDER,
        vision_feature_layer=-2, vision_feature_select_strategy="default",
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    hf = _perturb(LlavaForConditionalGeneration(config), 1)
    reference = copy.deepcopy(hf)
    return from_llava(hf, tok), reference


def test_llava_logits_equal_transformers(tiny_llava):
    mm, reference = tiny_llava
    torch.manual_seed(2)
    images = torch.randn(2, 3, 16, 16)
    a = mm.add_media("image", images[0], key="a")
    b = mm.add_media("image", images[1], key="b")
    batch = mm.tokenize([f"{a} The cat sleeps.", f"Le chat {b} dort"])
    assert [len(batch.positions(r, "image")) for r in range(2)] == [16, 16]  # 4x4 patches, no CLS
    with torch.no_grad():
        ours = mm(batch)
        theirs = reference(
            input_ids=_reference_ids(batch), pixel_values=images,
            attention_mask=batch.attention_mask,
        ).logits
        swapped = reference(
            input_ids=_reference_ids(batch), pixel_values=images.flip(0),
            attention_mask=batch.attention_mask,
        ).logits
    real = batch.attention_mask.bool()
    assert (ours[real] - theirs[real]).abs().max().item() < 1e-4
    assert (ours[real] - swapped[real]).abs().max().item() > 1e-3  # the images do matter
    assert attached_hooks(mm) == []


def test_llava_ids_call_uses_last_batch_and_plain_text_is_untouched(tiny_llava):
    mm, reference = tiny_llava
    image = torch.randn(3, 16, 16)
    marker = mm.add_media("image", image, key="c")
    batch = mm.tokenize([f"Look: {marker}"])
    with torch.no_grad():
        by_ids = mm(batch.ids, attention_mask=batch.attention_mask)  # how the scan engine calls
        theirs = reference(
            input_ids=_reference_ids(batch), pixel_values=image[None],
            attention_mask=batch.attention_mask,
        ).logits
        assert (by_ids - theirs).abs().max().item() < 1e-4
        text = mm.tokenize(["The cat sleeps."])
        plain = mm(text.ids)
        ref_plain = reference(input_ids=text.ids).logits
    assert (plain - ref_plain).abs().max().item() < 1e-4


def test_llava_folder_loads_safetensors_and_matches(tmp_path):
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

    from hublens.adapters.llava import load_llava

    tok = build_tokenizer()
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=16, patch_size=4, projection_dim=32,
        ),
        text_config=_text_config(len(tok)), image_token_id=PLACEHOLDER,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(7)
    hf = _perturb(LlavaForConditionalGeneration(config), 8)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    mm = load_llava(tmp_path)
    image = torch.randn(3, 16, 16)
    batch = mm.tokenize([f"{mm.add_media('image', image)} cat"])
    with torch.no_grad():
        ours = mm(batch)
        theirs = hf(input_ids=_reference_ids(batch), pixel_values=image[None]).logits
    assert (ours - theirs).abs().max().item() < 1e-4
    with pytest.raises(ValueError, match=r"\(3, 16, 16\)"):
        mm.add_media("image", torch.randn(3, 32, 32))
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_llava(tmp_path / "missing")


@pytest.fixture(scope="module")
def tiny_qwen2_audio():
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
    )

    tok = build_tokenizer()
    audio = Qwen2AudioEncoderConfig(
        num_mel_bins=8, d_model=32, encoder_layers=2, encoder_attention_heads=4,
        encoder_ffn_dim=64, max_source_positions=20,
    )
    config = Qwen2AudioConfig(
        audio_config=audio, text_config=_text_config(len(tok), "qwen2"),
        audio_token_id=PLACEHOLDER,
    )
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    hf = _perturb(Qwen2AudioForConditionalGeneration(config), 3)
    reference = copy.deepcopy(hf)
    return from_qwen2_audio(hf, tok), reference


def test_qwen2_audio_logits_equal_transformers(tiny_qwen2_audio):
    mm, reference = tiny_qwen2_audio
    torch.manual_seed(4)
    features = torch.randn(2, 8, 40)
    lengths = [40, 24]  # the second clip is padded: 16 frames hidden from the tower
    a = mm.add_media("audio", (features[0], lengths[0]), key="a")
    b = mm.add_media("audio", (features[1], lengths[1]), key="b")
    batch = mm.tokenize([f"Listen: {a} The cat", f"{b} chat"])
    assert [len(batch.positions(r, "audio")) for r in range(2)] == [10, 6]
    feature_mask = torch.zeros(2, 40, dtype=torch.long)
    for row, n in enumerate(lengths):
        feature_mask[row, :n] = 1
    with torch.no_grad():
        ours = mm(batch)
        theirs = reference(
            input_ids=_reference_ids(batch), input_features=features,
            feature_attention_mask=feature_mask, attention_mask=batch.attention_mask,
        ).logits
    real = batch.attention_mask.bool()
    assert (ours[real] - theirs[real]).abs().max().item() < 1e-4
    assert attached_hooks(mm) == []
