"""Tests of the built-in data sets in hublens.data.builtin."""

from __future__ import annotations

import ast
import builtins
import inspect
import re
import sys
import sysconfig
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from hublens.data import (
    BUILTIN_DATASETS,
    ParallelData,
    ParallelDataError,
    arithmetic_groups,
    load_builtin,
)
from hublens.data.builtin import code_args, code_lists, cogs_semantics

CJK = re.compile(r"[\u4e00-\u9fff]")
KANA_OR_KANJI = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")


def test_registry_names() -> None:
    assert set(BUILTIN_DATASETS) == {
        "multilingual-words",
        "multilingual-sentences",
        "arithmetic",
        "code-lists",
        "code-args",
        "semantics",
    }


def test_load_builtin_errors() -> None:
    with pytest.raises(ParallelDataError, match="unknown built-in data set 'numbers'") as info:
        load_builtin("numbers")
    assert "multilingual-words" in str(info.value) and "semantics" in str(info.value)
    with pytest.raises(ParallelDataError, match="does not accept options"):
        load_builtin("arithmetic", n=3)


def test_packaged_files_are_resources() -> None:
    folder = resources.files("hublens.data.builtin").joinpath("files")
    names = {entry.name for entry in folder.iterdir()}
    assert {"multilingual_words.jsonl", "multilingual_sentences.jsonl"} <= names


# ---------------------------------------------------------------------------- multilingual


def test_multilingual_words() -> None:
    words = load_builtin("multilingual-words")
    assert len(words) >= 200
    assert words.types == ("en", "zh", "fr", "de", "es", "ja")
    for item in words:
        for language in words.types:
            assert item[language].strip() == item[language], (item.id, language)
        assert item.id == item["en"]
        assert CJK.search(item["zh"]) and not LATIN.search(item["zh"]), item.id
        assert KANA_OR_KANJI.search(item["ja"]) and not LATIN.search(item["ja"]), item.id
        assert item["en"].isascii() and item["en"].islower(), item.id
        for language, articles in {
            "fr": ("le ", "la ", "les ", "l'", "un ", "une "),
            "de": ("der ", "die ", "das ", "ein ", "eine "),
            "es": ("el ", "la ", "los ", "las ", "un ", "una "),
        }.items():
            assert not item[language].lower().startswith(articles), (item.id, language)
    assert len(set(words.column("en"))) == len(words)
    assert Counter(words.meta_column("pos"))["noun"] > len(words) / 2
    dog = words[words.ids.index("dog")]
    assert dict(dog.texts) == {
        "en": "dog", "zh": "狗", "fr": "chien", "de": "Hund", "es": "perro", "ja": "犬"
    }  # fmt: skip


def test_multilingual_sentences() -> None:
    sentences = load_builtin("multilingual-sentences")
    assert len(sentences) >= 150
    assert sentences.types[:2] == ("en", "zh")
    for item in sentences:
        assert 5 <= len(item["en"].split()) <= 12, item["en"]
        assert item["en"][-1] in ".!?", item.id
        assert CJK.search(item["zh"]) and item["zh"][-1] in "。！？", item.id
    for language in sentences.types:
        assert len(set(sentences.column(language))) == len(sentences), language


# ---------------------------------------------------------------------------- arithmetic

ONES = "zero one two three four five six seven eight nine".split()
TEENS = "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
ZH_DIGITS = "零一二三四五六七八九"


def english(n: int) -> str:
    if n < 10:
        return ONES[n]
    if n < 20:
        return TEENS[n - 10]
    tens, ones = divmod(n, 10)
    return TENS[tens] + ("" if ones == 0 else "-" + ONES[ones])


def chinese(n: int) -> str:
    if n < 10:
        return ZH_DIGITS[n]
    tens, ones = divmod(n, 10)
    return ("" if tens == 1 else ZH_DIGITS[tens]) + "十" + ("" if ones == 0 else ZH_DIGITS[ones])


@pytest.fixture(scope="module")
def arithmetic() -> ParallelData:
    return load_builtin("arithmetic")


def test_arithmetic_counts_and_item_set(arithmetic: ParallelData) -> None:
    assert len(arithmetic) == 1123
    ops = Counter(arithmetic.meta_column("op"))
    assert ops == {"+": 846, "*": 277}
    # every "other (op) target" with target 1..9, other >= 1 and a value below 100
    expected = {("+", a, b) for b in range(1, 10) for a in range(1, 100) if a + b < 100}
    expected |= {("*", a, b) for b in range(1, 10) for a in range(1, 100) if a * b < 100}
    got = {(m["op"], *m["operands"]) for m in arithmetic.meta}
    assert got == expected


def test_arithmetic_numerals_evaluate_to_result(arithmetic: ParallelData) -> None:
    for item in arithmetic:
        op = "+" if "+" in item["numeral"] else "*"
        left, _, right = item["numeral"].partition(op)
        a, b = int(left), int(right)
        value = a + b if op == "+" else a * b
        assert value == item.meta["result"], item.id
        assert [a, b] == item.meta["operands"] and op == item.meta["op"]
        assert 1 <= b <= 9 and value < 100
        assert item.meta["lens_prompt"] == f"{value}={a}{op}"
        assert item.meta["lens_answer"] == b


def test_arithmetic_words_and_chinese(arithmetic: ParallelData) -> None:
    for item in arithmetic:
        a, b = item.meta["operands"]
        en_op, zh_op = ("plus", "加") if item.meta["op"] == "+" else ("times", "乘")
        assert item["words"] == f"{english(a)} {en_op} {english(b)}"
        assert item["zh"] == f"{chinese(a)}{zh_op}{chinese(b)}"
    spot = dict(zip(arithmetic.column("numeral"), arithmetic.column("zh"), strict=True))
    assert spot["3+2"] == "三加二" and spot["21*4"] == "二十一乘四" and spot["10+5"] == "十加五"


def test_arithmetic_groups(arithmetic: ParallelData) -> None:
    groups = arithmetic_groups(arithmetic)
    numerals = arithmetic.column("numeral")
    i, j, k = numerals.index("2+3"), numerals.index("4+1"), numerals.index("4+2")
    assert groups.group(i, i) == "exact_match"
    assert groups.group(i, j) == "same_result"
    assert groups.group(i, numerals.index("5*1")) == "same_result"
    assert groups.group(i, k) == "different_result"
    masks = groups.masks()
    n = len(arithmetic)
    counts = Counter(arithmetic.meta_column("result"))
    same = sum(c * (c - 1) for c in counts.values())
    assert int(masks["exact_match"].sum()) == n
    assert int(masks["same_result"].sum()) == same
    assert int(masks["different_result"].sum()) == n * n - n - same
    small = arithmetic.select([i, j, k])
    assert sorted(arithmetic_groups(small).pairs("same_result")) == [(0, 1), (1, 0)]
    with pytest.raises(ParallelDataError, match="no meta field 'result'"):
        arithmetic_groups(load_builtin("multilingual-words"))


# ---------------------------------------------------------------------------- code

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def _source(relpath: str) -> str:
    with (STDLIB / relpath).open(encoding="utf-8", newline="") as handle:
        return handle.read()


@pytest.fixture(scope="module")
def lists() -> ParallelData:
    return code_lists()


@pytest.fixture(scope="module")
def calls() -> ParallelData:
    return code_args()


def test_code_lists_prefixes_occur_in_stdlib(lists: ParallelData) -> None:
    assert len(lists) == 300
    assert lists.types == ("code", "next")
    assert len(set(lists.meta_column("file"))) >= 30
    for item in lists:
        meta = item.meta
        assert "test" not in Path(meta["file"]).parts[:-1]
        text = _source(meta["file"])
        assert text[meta["start"] : meta["end"]] == item["code"], item.id
        assert item["code"].endswith(",")
        assert text[meta["list_offset"]] == "["
        assert meta["start"] <= meta["list_offset"] < meta["end"]
        assert text[meta["next_offset"] :].startswith(item["next"])
        assert text[meta["end"] : meta["next_offset"]].strip() == ""
        assert meta["element_index"] < meta["n_elements"] - 1
        assert meta["python_version"] == ".".join(map(str, sys.version_info[:3]))


def _positional_params(relpath: str, name: str) -> list[str]:
    tree = ast.parse(_source(relpath))
    (function,) = [
        node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
    ]
    return [a.arg for a in function.args.posonlyargs + function.args.args]


def test_code_args_prefixes_and_parameters(calls: ParallelData) -> None:
    assert len(calls) == 300
    assert calls.types == ("code", "param", "arg")
    sources = Counter(calls.meta_column("signature_source"))
    assert sources["module"] >= 50 and sources["builtin"] >= 50
    for item in calls:
        meta = item.meta
        text = _source(meta["file"])
        assert text[meta["start"] : meta["end"]] == item["code"], item.id
        assert item["code"][-1] == ("(" if meta["arg_index"] == 0 else ",")
        assert text[meta["arg_offset"] :].startswith(item["arg"])
        assert item["param"] != item["arg"]
        if meta["signature_source"] == "module":
            params = _positional_params(meta["file"], meta["callee"])
        else:
            signature = inspect.signature(getattr(builtins, meta["callee"]))
            params = [
                p.name
                for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            ]
        assert params[meta["arg_index"]] == item["param"], item.id
        if meta["arg_index"] == 0:
            assert item["code"].rstrip("( \t").endswith(meta["callee"])


def test_code_sets_are_deterministic_prefixes(lists: ParallelData, calls: ParallelData) -> None:
    assert code_lists(max_items=20).to_records() == lists.to_records()[:20]
    assert code_args(max_items=20).to_records() == calls.to_records()[:20]
    assert load_builtin("code-lists").content_hash() == lists.content_hash()


def test_code_caps_validated() -> None:
    with pytest.raises(ParallelDataError, match="'max_items' must be a positive int"):
        code_lists(max_items=0)
    with pytest.raises(ParallelDataError, match="'per_file' must be a positive int"):
        code_args(per_file=-1)


def test_code_prefix_budget_respected() -> None:
    small = code_lists(max_items=50, max_prefix_chars=200)
    assert max(len(code) for code in small.column("code")) <= 200


# ---------------------------------------------------------------------------- semantics


@pytest.fixture(scope="module")
def cogs() -> ParallelData:
    return load_builtin("semantics")


def test_semantics_size_types_determinism(cogs: ParallelData) -> None:
    assert len(cogs) >= 200
    assert cogs.types == ("sentence", "logical_form", "lf_names_swapped", "lf_conjuncts_shuffled")
    assert cogs_semantics().content_hash() == cogs.content_hash()
    assert cogs_semantics(seed=1).content_hash() != cogs.content_hash()
    assert len(cogs_semantics(7)) == 7
    assert len(set(cogs.column("sentence"))) == len(cogs)
    assert set(cogs.meta_column("template")) == {
        "transitive_active",
        "transitive_passive",
        "ditransitive_pp",
        "ditransitive_double_object",
        "ditransitive_passive_theme",
        "ditransitive_passive_recipient",
    }


def test_semantics_controls(cogs: ParallelData) -> None:
    roles_seen = set()
    for item in cogs:
        original, swapped = item["logical_form"], item["lf_names_swapped"]
        shuffled = item["lf_conjuncts_shuffled"]
        first, second = item.meta["names"]
        assert first != second
        tokens = item["sentence"].split()
        assert tokens.count(first) == 1 and tokens.count(second) == 1
        # swapped: identical except that the two names trade places
        assert swapped != original
        pairs = list(zip(original.split(" "), swapped.split(" "), strict=True))
        differing = [(o, s) for o, s in pairs if o != s]
        assert sorted(differing) == sorted([(first, second), (second, first)])
        # shuffled: the same conjuncts in another order
        assert shuffled != original
        assert sorted(shuffled.split(" AND ")) == sorted(original.split(" AND "))
        for name, role in item.meta["name_roles"].items():
            roles_seen.add(role)
            assert re.search(rf"\. {role} \( x _ \d+ , {name} \)", original), item.id
            offset = item.meta["name_offsets"][name]
            assert item["sentence"][offset:].startswith(name + " ")
        index = int(re.search(r"x _ (\d+)", original).group(1))  # type: ignore[union-attr]
        verb = original.split(" ")[0]
        assert tokens[index][0] == verb[0], item.id
    assert roles_seen == {"agent", "theme", "recipient"}


def test_semantics_example_form() -> None:
    pp = [i for i in cogs_semantics(60) if i.meta["template"] == "ditransitive_pp"][0]
    a, b = pp.meta["names"]
    obj = pp["sentence"].split()[3]
    verb = pp["logical_form"].split(" ")[0]
    assert pp["logical_form"] == (
        f"{verb} . agent ( x _ 1 , {a} ) AND {verb} . theme ( x _ 1 , {obj} ) "
        f"AND {verb} . recipient ( x _ 1 , {b} )"
    )
