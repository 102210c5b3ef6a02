"""Input bounds: texts longer than the context or max_tokens, and texts with no tokens.

Every refusal must come before any forward pass; a forward hook on the Hugging Face module
(not a mock) counts the passes that did run.
"""

from __future__ import annotations

import pytest
import torch

import hublens
from hublens import semantic_hub_scan
from hublens.data import ParallelData
from hublens.errors import NoTokensError, TextTooLongError
from tests.conftest import build_tiny, build_tokenizer


@pytest.fixture(scope="module")
def model():
    hf, _, tok = build_tiny("llama")
    return hublens.load_model(hf, tok)


@pytest.fixture(scope="module")
def zwsp_model():
    """A model whose tokenizer strips U+200B (zero-width space) and adds no BOS."""
    from tokenizers import normalizers

    tok = build_tokenizer()
    tok._tokenizer.normalizer = normalizers.Replace("\u200b", "")
    hf, _, tok = build_tiny("llama", tokenizer=tok)
    return hublens.load_model(hf, tok, prepend_bos=False)


def _forward_counter(model):
    calls = []
    embed = model.bridge.original_model.get_input_embeddings()  # runs first in every forward
    handle = embed.register_forward_pre_hook(lambda *a: calls.append(1))
    return calls, handle


def test_context_length_is_the_models(model):
    assert model.context_length == model.bridge.original_model.config.max_position_embeddings


def test_tokenize_refuses_text_beyond_context(model):
    long = "cat " * 400  # about 400+ tokens; the tiny context is 128
    n = len(model.tokenizer.encode(long, add_special_tokens=False)) + 1  # + BOS
    with pytest.raises(TextTooLongError) as info:
        model.tokenize(["dog", long])
    message = str(info.value)
    assert "texts[1]" in message and f"{n:,} tokens" in message and "128" in message
    assert "max_tokens" in message  # says how to fix it
    assert isinstance(info.value, ValueError)


def test_tokenize_max_tokens_option(model):
    text = "The cat sleeps on the warm mat."
    n = model.tokenize(text).lengths.item()
    assert model.tokenize(text, max_tokens=n).lengths.item() == n  # the limit is inclusive
    with pytest.raises(TextTooLongError, match=f"max_tokens={n - 1}"):
        model.tokenize(text, max_tokens=n - 1)
    with pytest.raises(ValueError, match="max_tokens=1000.*context of 128"):
        model.tokenize(text, max_tokens=1000)
    with pytest.raises(ValueError, match="max_tokens=0"):
        model.tokenize(text, max_tokens=0)


def test_text_with_no_tokens_is_an_error(zwsp_model):
    assert zwsp_model.tokenizer.encode("\u200b", add_special_tokens=False) == []
    with pytest.raises(NoTokensError, match=r"texts\[1\]='\\u200b'.*no tokens"):
        zwsp_model.tokenize(["dog", "\u200b"])


def _data(texts_en):
    return ParallelData.from_records(
        [{"id": f"w{i}", "en": t, "zh": "猫"} for i, t in enumerate(texts_en)], name="mine"
    )


def test_scan_refuses_too_long_item_before_any_forward(model):
    calls, handle = _forward_counter(model)
    try:
        with pytest.raises(TextTooLongError) as info:
            semantic_hub_scan(model, _data(["dog", "cat", "cat " * 400]), progress=False)
        assert calls == []
    finally:
        handle.remove()
    message = str(info.value)
    assert "'w2'" in message and "'en'" in message and "mine" in message


def test_scan_max_tokens_option(model):
    data = _data(["dog", "cat", "The cat sleeps on the warm mat."])
    calls, handle = _forward_counter(model)
    try:
        with pytest.raises(TextTooLongError, match="max_tokens=3"):
            semantic_hub_scan(model, data, max_tokens=3, progress=False)
        assert calls == []
        result = semantic_hub_scan(model, data, max_tokens=64, progress=False)
    finally:
        handle.remove()
    assert calls and len(result.rows) > 0


def test_scan_refuses_item_with_no_tokens_before_any_forward(zwsp_model):
    calls, handle = _forward_counter(zwsp_model)
    try:
        with pytest.raises(NoTokensError) as info:
            semantic_hub_scan(zwsp_model, _data(["dog", "\u200b", "cat"]), progress=False)
        assert calls == []
    finally:
        handle.remove()
    assert "'w1'" in str(info.value) and "'en'" in str(info.value)


def test_tokenize_ids_equal_the_tokenizers_own(model):
    from tests.conftest import CORPUS

    batch = model.tokenize(CORPUS)
    for row, text in enumerate(CORPUS):
        expected = [
            model.tokenizer.bos_token_id,
            *model.tokenizer.encode(text, add_special_tokens=False),
        ]
        assert batch.ids[row, : batch.lengths[row]].tolist() == expected
        assert torch.all(batch.attention_mask[row, batch.lengths[row] :] == 0)
