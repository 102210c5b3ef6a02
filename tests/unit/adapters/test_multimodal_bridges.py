"""LLaVA-NeXT and Gemma-3 multimodal through TransformerLens 4.3's own bridges (tiny configs).

Every number is compared with the plain transformers model fed the same pixel values: its own
forward (logits), forward hooks on its language-model layers (states, steering), its final norm
and head by hand (lenses), numpy cosines (similarity). Qwen2.5-VL is an expected failure with
the measured reason.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

import hublens
from hublens import semantic_hub_scan
from hublens.adapters.vision_bridges import QWEN2_5_VL_REASON, image_pixels, load_vision_bridge
from hublens.analyses.modality_lens import ModalityLens
from hublens.analyses.similarity import Similarity
from hublens.data import ParallelData
from hublens.hooks import (
    ActivationStore,
    AllPositions,
    LogitLens,
    Positions,
    attached_hooks,
    capture_hooks,
    hook_name,
)
from tests.unit.adapters.multimodal_builders import build

#: Whether torchvision is importable before any model boots here (booting must not change it).
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
SIZES = {"a": (20, 30), "b": (16, 16), "c": (40, 18)}  # LLaVA-NeXT: 3 different grids


@pytest.fixture(scope="module", params=["llava_next", "gemma3"])
def vision(request):
    hf, reference, tok = build(request.param)
    mm = load_vision_bridge(hf, tok)
    g = torch.Generator().manual_seed(0)
    images = {k: torch.randn(3, *size, generator=g) for k, size in SIZES.items()}
    for key, image in images.items():
        mm.add_media("image", image, key=key)
    yield request.param, mm, reference, images
    assert attached_hooks(mm) == []


def _reference_inputs(family, mm, batch, keys):
    """HF forward inputs by hand: the batch's ids and the registered pixel values."""
    pixels = [mm.media["image"][k][0] for k in keys]
    if family == "gemma3":
        return dict(
            input_ids=batch.ids, attention_mask=batch.attention_mask,
            pixel_values=torch.stack(pixels),
            token_type_ids=(batch.ids == mm.config.image_token_index).long(),
        )  # fmt: skip
    most = max(p.shape[0] for p in pixels)
    padded = torch.stack([torch.cat([p, p.new_zeros(most - len(p), *p.shape[1:])]) for p in pixels])
    return dict(
        input_ids=batch.ids, attention_mask=batch.attention_mask, pixel_values=padded,
        image_sizes=torch.tensor([SIZES[k] for k in keys]),
    )  # fmt: skip


def _hf_layers(reference, inputs, hooks=()):
    """(logits, [output of each language-model layer]) of plain HF, extra ``(layer, fn)``."""
    layers = reference.model.language_model.layers
    outputs = [None] * len(layers)
    handles = [
        layer.register_forward_hook(
            lambda m, a, o, i=i: outputs.__setitem__(i, o[0] if isinstance(o, tuple) else o)
        )
        for i, layer in enumerate(layers)
    ]
    handles += [layers[i].register_forward_hook(fn) for i, fn in hooks]
    try:
        with torch.no_grad():
            logits = reference(**inputs).logits
    finally:
        for h in handles:
            h.remove()
    return logits, outputs


def _lens_probs(reference, h):
    with torch.no_grad():
        return reference.lm_head(reference.model.language_model.norm(h)).float().softmax(-1)


def test_image_positions_are_recorded(vision):
    family, mm, reference, _ = vision
    tok = mm.tokenizer
    batch = mm.tokenize(["<image:a> The cat sleeps.", "Le chat <image:b> dort"])
    image_id = mm.image_token_id
    for row, (key, before) in enumerate([("a", ""), ("b", "Le chat ")]):
        (span,) = batch.spans[row]
        text = tok.encode(before, add_special_tokens=False) if before else []
        extra = 1 if family == "gemma3" else 0  # Gemma-3: BOI before the image tokens
        assert span.key == key and span.start == 1 + len(text) + extra
        assert batch.ids[row, 1 : 1 + len(text)].tolist() == text
        assert (batch.ids[row, span.start : span.stop] == image_id).all()
        assert int((batch.ids[row] == image_id).sum()) == span.stop - span.start
        if family == "gemma3":
            assert batch.ids[row, span.start - 1] == mm.config.boi_token_index
            assert batch.ids[row, span.stop] == mm.config.eoi_token_index
    # the count is transformers' own: the rows its image path produces for that image
    for key in ("a", "b", "c"):
        if family == "gemma3":
            expected = mm.config.mm_tokens_per_image
        else:
            pixels = mm.media["image"][key][0]
            with torch.no_grad():
                out = reference.model.get_image_features(
                    pixels[None], torch.tensor([SIZES[key]]), return_dict=True
                )
            expected = out.pooler_output[0].shape[0]
        assert mm.n_image_tokens(key) == expected


def test_logits_equal_transformers_with_the_same_pixel_values(vision):
    family, mm, reference, _ = vision
    batch = mm.tokenize(["<image:a> The cat sleeps.", "Le chat <image:c> dort"])
    inputs = _reference_inputs(family, mm, batch, ["a", "c"])
    with torch.no_grad():
        ours = mm(batch)
        by_ids = mm(batch.ids, attention_mask=batch.attention_mask)  # how the scan calls
        theirs = reference(**inputs).logits
        no_image = reference(input_ids=batch.ids, attention_mask=batch.attention_mask).logits
    real = batch.attention_mask.bool()
    assert (ours[real] - theirs[real]).abs().max().item() < 1e-4
    assert (by_ids[real] - theirs[real]).abs().max().item() < 1e-4
    assert (theirs[real] - no_image[real]).abs().max().item() > 1e-3  # the pixels do matter
    text = mm.tokenize(["The cat sleeps."])  # plain text runs without pixels
    with torch.no_grad():
        plain = mm(text.ids)
    assert (plain - reference(input_ids=text.ids).logits).abs().max().item() < 1e-4


def test_states_and_lens_at_image_positions(vision):
    family, mm, reference, _ = vision
    batch = mm.tokenize(["Look: <image:b> red"])
    pos = batch.positions(0, "image")
    store = ActivationStore()
    with torch.no_grad(), mm.hooks(fwd_hooks=capture_hooks(mm, store, where=AllPositions())):
        mm(batch.ids, attention_mask=batch.attention_mask)
    _, states = _hf_layers(reference, _reference_inputs(family, mm, batch, ["b"]))
    ids = torch.tensor([5, 17, 200])
    lens = LogitLens.from_model(mm, final_norm=True)
    for layer in range(mm.n_layers):
        ours = store.tensor(hook_name(layer))[0, pos]
        assert torch.allclose(ours, states[layer][0, pos], atol=1e-4, rtol=0), layer
        got = lens.readout(ours, ids, layer=layer).target_logprobs.exp()
        expected = _lens_probs(reference, states[layer][0, pos])[:, ids]
        assert torch.allclose(got, expected, atol=1e-4, rtol=0), layer


def test_steering_at_image_positions_equals_a_hand_hook(vision):
    family, mm, reference, _ = vision
    batch = mm.tokenize(["<image:a> The cat"])
    pos = batch.positions(0, "image")
    vector = torch.randn(mm.d_model, generator=torch.Generator().manual_seed(1))
    with torch.no_grad(), hublens.steer(mm, vector, layers=0, scale=2.0, where=Positions(pos)):
        ours = mm(batch)

    def add(module, args, out):
        hidden = (out[0] if isinstance(out, tuple) else out).clone()
        hidden[:, pos] += 2.0 * vector
        return (hidden, *out[1:]) if isinstance(out, tuple) else hidden

    inputs = _reference_inputs(family, mm, batch, ["a"])
    theirs, _ = _hf_layers(reference, inputs, hooks=[(0, add)])
    plain, _ = _hf_layers(reference, inputs)
    assert (theirs - plain).abs().max().item() > 1e-3  # the steering is visible
    assert (ours - theirs).abs().max().item() < 1e-4
    assert attached_hooks(mm) == []


def test_similarity_and_modality_lens_scans_equal_plain_transformers(vision):
    family, mm, reference, _ = vision
    labels = {"a": "cat", "b": "mat", "c": "cat"}
    records = [
        {"id": k, "image": f"<image:{k}>", "en": f"The {lab}", "meta": {"label": lab}}
        for k, lab in labels.items()
    ]
    data = ParallelData.from_records(records, name="images")
    analyses = [Similarity(pairs=[("image", "en")], cues={}), ModalityLens(media="image", seed=1)]
    result = semantic_hub_scan(mm, data, analyses=analyses, batch_size=2, progress=False)
    last = {"image": [], "en": []}
    p_label = np.zeros((len(records), mm.n_layers))
    for i, (key, label) in enumerate(labels.items()):
        for kind, text in (("image", f"<image:{key}>"), ("en", f"The {label}")):
            batch = mm.tokenize([text])
            keys = [key] if kind == "image" else []
            inputs = (
                _reference_inputs(family, mm, batch, keys) if keys
                else dict(input_ids=batch.ids, attention_mask=batch.attention_mask)
            )  # fmt: skip
            _, states = _hf_layers(reference, inputs)
            h = torch.stack([s[0] for s in states]).float()  # (layer, pos, d)
            rows = h[:, -1].clone()
            with torch.no_grad():
                rows[-1] = reference.model.language_model.norm(rows[-1])  # the model's output
            last[kind].append(rows.double().numpy())
            if kind == "image":
                word = mm.tokenizer.encode(f" {label}", add_special_tokens=False)[0]
                pos = batch.positions(0)
                p_label[i] = _lens_probs(reference, h[:, pos])[..., word].mean(-1).numpy()
    x, y = (np.stack(last[k], axis=1) for k in ("image", "en"))
    xn = x / np.linalg.norm(x, axis=-1, keepdims=True)
    yn = y / np.linalg.norm(y, axis=-1, keepdims=True)
    cos = np.einsum("lid,ljd->lij", xn, yn)
    diag = np.diagonal(cos, axis1=-2, axis2=-1)
    adjusted = (diag - (cos.sum(-1) - diag) / (len(records) - 1)).mean(-1)
    for layer in range(mm.n_layers):
        (sim,) = [
            r for r in result.select("similarity", group="image-en")
            if r.layer == layer and r.metric == "adjusted_cosine"
        ]  # fmt: skip
        assert abs(sim.mean - adjusted[layer]) < 1e-4, layer
        (lens,) = [
            r for r in result.rows
            if r.analysis == "modality_lens" and r.metric == "p_label" and r.layer == layer
        ]  # fmt: skip
        assert abs(lens.mean - p_label[:, layer].mean()) < 1e-4, layer


def test_pixel_values_are_built_from_the_config(vision):
    family, mm, _, images = vision
    s = mm.config.vision_config.image_size
    pixels, size = image_pixels(mm.config, images["b"])  # 16 x 16: no resize of the base view
    assert size == (16, 16)
    if family == "gemma3":
        assert torch.allclose(pixels, images["b"], atol=1e-6)
    else:  # best pinpoint for 16 x 16 is 16 x 32 (first of the least waste): centred, 2 tiles
        image = images["b"]
        assert pixels.shape == (3, 3, s, s)
        assert torch.allclose(pixels[0], image, atol=1e-6)  # the base view
        assert torch.allclose(pixels[1, :, :, 8:], image[:, :, :8], atol=1e-6)
        assert torch.allclose(pixels[2, :, :, :8], image[:, :, 8:], atol=1e-6)
        assert (pixels[1, :, :, :8] == 0).all() and (pixels[2, :, :, 8:] == 0).all()
    with pytest.raises(TypeError, match="float tensor"):
        mm.add_media("image", torch.zeros(3, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="not registered"):
        mm.tokenize(["<image:nope> hi"])
    with pytest.raises(ValueError, match="already registered"):
        mm.add_media("image", images["a"], key="a")


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision installed: TL may boot Qwen2.5-VL")
def test_qwen2_5_vl_is_not_bridged_by_transformer_lens_4_3():
    hf, _, tok = build("qwen2_5_vl")
    with pytest.raises(ImportError) as caught:
        hublens.load_model(hf, tok)
    assert str(caught.value).strip().splitlines()[-1] in QWEN2_5_VL_REASON
    with pytest.raises(ValueError, match="torchvision"):
        load_vision_bridge(hf, tok)
    pytest.xfail(f"TransformerLens 4.3 cannot boot Qwen2.5-VL here: {QWEN2_5_VL_REASON}")


def test_no_hook_left_after_an_exception_and_nothing_installed(vision):
    _, mm, _, _ = vision
    batch = mm.tokenize(["<image:b> x"])

    def boom(x, hook):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), mm.hooks(fwd_hooks=[(hook_name(1), boom)]):
        mm(batch)
    assert attached_hooks(mm) == []
    # booting logged TransformerLens's wish to pip-install torchvision; hublens refused it
    assert (importlib.util.find_spec("torchvision") is not None) == HAS_TORCHVISION


def test_hublens_check_passes_on_the_bridged_model(vision):
    _, mm, _, _ = vision
    report = hublens.check(mm)
    assert report.passed, report.to_text()
    assert report["steering.kv_cache"].status == "pass"


@pytest.mark.parametrize("cached", [True, False])
def test_generation_with_an_image_equals_transformers_greedy(vision, cached):
    family, mm, reference, _ = vision
    text = "<image:a> The cat"
    ours = mm.generate_text(text, max_new_tokens=5, use_past_kv_cache=cached)
    batch = mm.tokenize([text])
    inputs = _reference_inputs(family, mm, batch, ["a"])
    with torch.no_grad():
        out = reference.generate(**inputs, max_new_tokens=5, do_sample=False, min_new_tokens=5)
    theirs = mm.tokenizer.decode(out[0, batch.ids.shape[1] :], skip_special_tokens=True)
    assert ours == theirs
    assert attached_hooks(mm) == []
