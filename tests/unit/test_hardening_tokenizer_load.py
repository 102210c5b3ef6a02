"""The cache's fast tokenizer load builds the same tokenizer AutoTokenizer would."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from hublens.gguf_loading import _cached_tokenizer
from tests.conftest import CORPUS, build_tokenizer


@pytest.mark.parametrize("add_bos", [True, False])
def test_fast_tokenizer_load_equals_autotokenizer(tmp_path, add_bos):
    tok = build_tokenizer()
    tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tok.save_pretrained(tmp_path)
    extra = {"add_bos_token": add_bos}
    ours = _cached_tokenizer(tmp_path, extra)
    theirs = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True, **extra)
    assert ours is not None and type(ours) is type(theirs)
    assert ours.backend_tokenizer.to_str() == theirs.backend_tokenizer.to_str()
    for attr in (
        "bos_token_id",
        "eos_token_id",
        "pad_token_id",
        "unk_token_id",
        "padding_side",
        "add_bos_token",
        "all_special_ids",
        "chat_template",
    ):
        assert getattr(ours, attr) == getattr(theirs, attr), attr
    assert {k: str(v) for k, v in ours.added_tokens_decoder.items()} == {
        k: str(v) for k, v in theirs.added_tokens_decoder.items()
    }
    texts = [*CORPUS, "<bos>x<eos>", "\u200b", "  a  "]
    assert ours(texts)["input_ids"] == theirs(texts)["input_ids"]
    assert [ours.decode(ours.encode(t)) for t in texts] == [
        theirs.decode(theirs.encode(t)) for t in texts
    ]


def test_unusual_folders_fall_back(tmp_path):
    assert _cached_tokenizer(tmp_path, {}) is None  # no tokenizer files at all
