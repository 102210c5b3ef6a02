"""Patching's input checks: every bad input is refused before any forward, naming the fix."""

from __future__ import annotations

import pytest

from hublens.hooks import attached_hooks
from hublens.patching import ConceptPatching
from hublens.patching.generate import patched_generate
from tests.conftest import build_tiny
from tests.helpers.patching_words import tiny_word_table

SOURCE = 'Français: "chat" - English: "cat"\nFrançais: "fleur" - English: "'
TARGET = 'Deutsch: "Blume" - 中文: "花"\nDeutsch: "Katze" - 中文: "'


@pytest.fixture(scope="module")
def words():
    """The tiny user word table."""
    return tiny_word_table()


def _forward_counter(model):
    calls = []
    embed = model.bridge.original_model.get_input_embeddings()  # runs first in every forward
    return calls, embed.register_forward_pre_hook(lambda *a: calls.append(1))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"source": "ko"}, r"source='ko' is not a language of the word table 'tiny-words'"),
        ({"target_in": "ja"}, r"target_in='ja' is not a language"),
        ({"mean_sources": ["pt"]}, r"mean_sources\[0\]='pt' is not a language"),
        ({"source_out": "zh"}, r"source_out='zh' equals target='zh'"),
        ({"layers": [99]}, r"layers contains 99, out of range"),
        ({"layers": [2], "span": 2}, r"layers=\[2\] with span=2 would patch past the last layer"),
        ({"position": -1000}, r"position=-1000: source_prompts\[0\] has \d+ tokens"),
        ({"position": True}, r"position=True: pass an int"),
        ({"n_items": 1}, r"n_items=1: pass an int >= 2"),
    ],
)
def test_bad_input_is_refused_before_any_forward(tiny, words, options, message):
    model, _, _ = tiny
    base = {"target_in": "de", "few_shot": 1, "progress": False, "mean_sources": []}
    calls, handle = _forward_counter(model)
    try:
        with pytest.raises((ValueError, TypeError), match=message):
            ConceptPatching(**{**base, **options}).run(model, words)
    finally:
        handle.remove()
    assert calls == [] and attached_hooks(model) == []


@pytest.fixture(scope="module")
def zwsp_model():
    """A tiny model whose tokenizer strips U+200B (zero-width space): such a word has no token."""
    from tokenizers import normalizers

    import hublens
    from tests.conftest import build_tokenizer

    tok = build_tokenizer()
    tok._tokenizer.normalizer = normalizers.Replace("\u200b", "")
    hf, _, tok = build_tiny("llama", tokenizer=tok)
    return hublens.load_model(hf, tok, prepend_bos=False)


def test_a_word_with_no_token_is_refused_before_any_forward(zwsp_model, words):
    from hublens.data import ParallelData

    records = [dict(item.texts, id=item.id) for item in words]
    records[1]["zh"] = "\u200b"
    table = ParallelData.from_records(records, name="zwsp-words")
    calls, handle = _forward_counter(zwsp_model)
    try:
        with pytest.raises(ValueError, match=r"The word '\\u200b' \(item 'cat', language 'zh'\)"):
            ConceptPatching(target_in="de", few_shot=1, progress=False).run(zwsp_model, table)
    finally:
        handle.remove()
    assert calls == []


def test_patched_generate_refuses_a_missing_position_before_any_forward(tiny):
    model, _, _ = tiny
    calls, handle = _forward_counter(model)
    try:
        with pytest.raises(ValueError, match=r"position=-100: source\[0\] has \d+ tokens"):
            patched_generate(model, SOURCE, TARGET, layers=0, position=-100)
        with pytest.raises(ValueError, match="out of range"):
            patched_generate(model, SOURCE, TARGET, layers=7)
    finally:
        handle.remove()
    assert calls == []


def test_cli_options_and_errors_before_loading():
    from hublens.cli import build_parser
    from hublens.patching.cli import patching_options

    parse = build_parser().parse_args
    args = parse(
        [
            "patch",
            "--source",
            "ja:en",
            "--target",
            "es:zh",
            "--layers",
            "4,8",
            "--span",
            "2",
            "--mean-sources",
            "",
            "--no-controls",
            "--no-progress",
        ]
    )
    options = patching_options(args)
    assert options == {
        "source": "ja",
        "source_out": "en",
        "target_in": "es",
        "target": "zh",
        "layers": [4, 8],
        "span": 2,
        "mean_sources": [],
        "controls": False,
        "progress": False,
    }
    assert patching_options(parse(["patch"]))["target"] == "zh"
    with pytest.raises(SystemExit, match="write LANG or IN:OUT"):
        patching_options(parse(["patch", "--source", "fr:en:de"]))
    with pytest.raises(SystemExit, match="comma-separated ints"):
        patching_options(parse(["patch", "--layers", "4,x"]))
