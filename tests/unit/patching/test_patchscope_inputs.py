"""The patchscope's input checks: every bad input is refused before any forward, naming the fix."""

from __future__ import annotations

import pytest
import torch

from hublens.hooks import attached_hooks
from hublens.patching import TranslationPatchscope, patchscope, placeholder_position
from hublens.patching.generate import patchscope_generate
from tests.conftest import build_tiny
from tests.helpers.patching_words import tiny_word_table

SOURCE = 'Français: "chat" - English: "cat"\nFrançais: "fleur" - English: "'


@pytest.fixture(scope="module")
def model():
    """The tiny Llama as a HubModel."""
    import hublens

    hf, _, tokenizer = build_tiny("llama")
    loaded = hublens.load_model(hf, tokenizer)
    yield loaded
    assert attached_hooks(loaded) == []


def _forward_counter(model):
    calls = []
    embed = model.bridge.original_model.get_input_embeddings()  # runs first in every forward
    return calls, embed.register_forward_pre_hook(lambda *a: calls.append(1))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"identity": "cat → cat; hello →"}, r"holds placeholder='\?' 0 times"),
        ({"identity": "? → ?; ? →"}, r"holds placeholder='\?' 3 times"),
        ({"placeholder": ""}, r"placeholder='': pass a non-blank string"),
        (
            {"identity": "The cat sleeps; ? →", "placeholder": "at"},
            r"placeholder='at' is tokenized as .* it must be one token of its own",
        ),
        ({"position": -1000}, r"position=-1000: prompts\[0\] has \d+ tokens"),
        ({"position": 2.0}, r"parameter 'position'|position=2.0: pass an int"),
        ({"layers": [99]}, r"layers contains 99, out of range"),
        ({"into": 7}, r"into=7 is not a layer of this model \(0..2\)"),
        ({"into": [0, 1]}, r"parameter 'into'|into=\[0, 1\]: pass one layer"),
        ({"top_k": 0}, r"top_k=0: pass an int >= 1"),
        ({"targets": {"en": [""]}}, r"targets\['en'\]\[0\]='' yields no token"),
        ({"targets": {"en": [" cat"]}}, r"targets\['en'\]\[0\]=' cat' yields no token"),
        ({"targets": {"en": ["cat", "dog"]}}, r"targets\['en'\] is 2 words; pass one word"),
        ({"targets": {"en": "cat"}}, r"targets\['en'\] is a string"),
        ({"targets": {}}, r"targets: pass"),
        ({"targets": {"two words": ["cat"]}}, r"names must be identifiers"),
    ],
)
def test_bad_input_is_refused_before_any_forward(model, options, message):
    calls, handle = _forward_counter(model)
    kwargs = {"targets": {"en": ["cat"]}, **options}
    try:
        with pytest.raises((ValueError, TypeError), match=message):
            patchscope(model, [SOURCE], **kwargs)
    finally:
        handle.remove()
    assert calls == [] and attached_hooks(model) == []


def test_prompts_as_one_string_or_empty_are_refused(model):
    with pytest.raises(ValueError, match="not one string"):
        patchscope(model, SOURCE, targets={"en": ["cat"]})
    with pytest.raises(ValueError, match="pass a non-empty list|one word per prompt"):
        patchscope(model, [], targets={"en": []})


def test_greedy_patchscope_checks_before_any_forward(model):
    calls, handle = _forward_counter(model)
    try:
        with pytest.raises(ValueError, match=r"layers contains 9, out of range"):
            patchscope_generate(model, SOURCE, layers=[9])
        with pytest.raises(ValueError, match=r"holds placeholder='\?' 0 times"):
            patchscope_generate(model, SOURCE, identity="no placeholder", layers=[0])
        with pytest.raises(ValueError, match=r"position=-999"):
            patchscope_generate(model, SOURCE, layers=[0], position=-999)
    finally:
        handle.remove()
    assert calls == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"source": "ko"}, r"source='ko' is not a language of the word table 'tiny-words'"),
        ({"latent": "ja"}, r"latent='ja' is not a language"),
        ({"source": "zh"}, r"source and target are both 'zh'"),
        ({"n_items": 0}, r"n_items=0: pass an int >= 1"),
        ({"layers": [5]}, r"layers contains 5, out of range"),
    ],
)
def test_translation_patchscope_refuses_bad_input_before_any_forward(model, options, message):
    calls, handle = _forward_counter(model)
    try:
        with pytest.raises(ValueError, match=message):
            TranslationPatchscope(**options).run(model, tiny_word_table())
    finally:
        handle.remove()
    assert calls == []


def test_placeholder_position_counts_bos(model):
    ids = model.encode_rows(["cat → cat; ? →"])[0]
    slot = placeholder_position(model, "cat → cat; ? →")
    assert model.tokenizer.decode([ids[slot]]).strip() == "?"
    assert ids[0] == model.tokenizer.bos_token_id and slot >= 1
    assert torch.tensor(ids).ndim == 1
