"""Tests of hublens.data.parallel: constructors, loaders, access, validation, hashing."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from hublens.data import BUILTIN_DATASETS, ParallelData, ParallelDataError, ParallelItem

RECORDS = [
    {"id": "a", "en": "dog", "zh": "狗", "meta": {"pos": "noun", "n": [1, 2]}},
    {"id": "b", "en": "cat", "zh": "猫", "meta": {"pos": "noun", "n": [3]}},
    {"id": "c", "en": "red, bright", "zh": "红", "meta": {"pos": "adjective", "n": []}},
]


def _write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )
    return path


def _write_delimited(path: Path, rows: list[list[str]], delimiter: str) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter, lineterminator="\n")
        writer.writerows(rows)
    return path


@pytest.fixture()
def data() -> ParallelData:
    return ParallelData.from_records(RECORDS, name="tiny")


# ---------------------------------------------------------------------------- round trips


def test_from_records_keeps_order_ids_texts_and_meta(data: ParallelData) -> None:
    assert data.types == ("en", "zh")
    assert data.ids == ("a", "b", "c")
    assert data.column("en") == ["dog", "cat", "red, bright"]
    assert data.column("zh") == ["狗", "猫", "红"]
    assert data.meta_column("pos") == ["noun", "noun", "adjective"]
    assert data.to_records() == RECORDS
    assert ParallelData.from_records(data.to_records(), name="tiny") == data


def test_jsonl_round_trip(tmp_path: Path, data: ParallelData) -> None:
    path = _write_jsonl(tmp_path / "words.jsonl", RECORDS)
    loaded = ParallelData.from_jsonl(path)
    assert loaded.name == "words"
    assert loaded.to_records() == RECORDS
    assert loaded.content_hash() == data.content_hash()
    written = data.to_jsonl(tmp_path / "out.jsonl")
    assert ParallelData.from_jsonl(written).to_records() == RECORDS


def test_jsonl_skips_blank_lines_and_accepts_bom(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(
        '\ufeff{"en": "dog", "zh": "狗"}\n\n   \n{"en": "cat", "zh": "猫"}\n', encoding="utf-8"
    )
    loaded = ParallelData.from_jsonl(path)
    assert loaded.pairs("en", "zh") == [("dog", "狗"), ("cat", "猫")]
    assert loaded.ids == ("x-00000", "x-00001")


def test_tsv_round_trip_with_id_column(tmp_path: Path) -> None:
    rows = [["id", "en", "fr"], ["1", "dog", "chien"], ["2", "tree", "arbre"]]
    path = _write_delimited(tmp_path / "d.tsv", rows, "\t")
    loaded = ParallelData.from_tsv(path)
    assert loaded.types == ("en", "fr")
    assert loaded.ids == ("1", "2")
    assert loaded.to_records() == [
        {"id": "1", "en": "dog", "fr": "chien"},
        {"id": "2", "en": "tree", "fr": "arbre"},
    ]


def test_csv_round_trip_with_quoted_commas_and_no_id(tmp_path: Path) -> None:
    rows = [["numeral", "words"], ["3+2", "three plus two"], ["1,000", "one thousand"]]
    path = _write_delimited(tmp_path / "a.csv", rows, ",")
    loaded = ParallelData.from_csv(path)
    assert loaded.pairs("numeral", "words") == [
        ("3+2", "three plus two"),
        ("1,000", "one thousand"),
    ]
    assert loaded.ids == ("a-00000", "a-00001")


def test_load_dispatches_on_source_kind(tmp_path: Path, data: ParallelData) -> None:
    assert ParallelData.load(data) is data
    assert ParallelData.load(RECORDS).to_records() == RECORDS
    jsonl = _write_jsonl(tmp_path / "w.jsonl", RECORDS)
    assert ParallelData.load(jsonl).to_records() == RECORDS
    assert ParallelData.load(str(jsonl)).to_records() == RECORDS
    tsv = _write_delimited(tmp_path / "w.tsv", [["en", "zh"], ["dog", "狗"]], "\t")
    assert ParallelData.load(tsv).pairs("en", "zh") == [("dog", "狗")]
    csv_path = _write_delimited(tmp_path / "w.CSV", [["en", "zh"], ["dog", "狗"]], ",")
    assert ParallelData.load(csv_path).pairs("en", "zh") == [("dog", "狗")]
    semantics = ParallelData.load("semantics", n=3)
    assert len(semantics) == 3
    assert semantics.types[0] == "sentence"


# ---------------------------------------------------------------------------- access


def test_iteration_indexing_and_pairs(data: ParallelData) -> None:
    items = list(data)
    assert all(isinstance(item, ParallelItem) for item in items)
    assert [item.id for item in items] == ["a", "b", "c"]
    assert items[1]["zh"] == "猫"
    assert data[-1].meta["pos"] == "adjective"
    assert len(data) == 3
    assert data.pairs("zh", "en")[0] == ("狗", "dog")


def test_select_subset_and_batches(data: ParallelData) -> None:
    picked = data.select([2, 0])
    assert picked.ids == ("c", "a")
    assert picked.column("en") == ["red, bright", "dog"]
    assert data.subset(2).ids == ("a", "b")
    assert data.subset(10) is data
    sampled = data.subset(2, seed=7)
    assert sampled == data.subset(2, seed=7)
    assert list(sampled.ids) == sorted(sampled.ids, key=data.ids.index)
    batches = list(data.batches(2))
    assert [b.ids for b in batches] == [("a", "b"), ("c",)]


def test_immutable(data: ParallelData) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        data.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        data.items[0]["en"] = "wolf"  # type: ignore[index]
    records = data.to_records()
    records[0]["en"] = "wolf"
    assert data.column("en")[0] == "dog"


def test_provenance(data: ParallelData) -> None:
    assert data.provenance() == {
        "name": "tiny",
        "n_items": 3,
        "types": ["en", "zh"],
        "content_hash": data.content_hash(),
    }


# ---------------------------------------------------------------------------- hashing


def test_content_hash_matches_canonical_json_sha256(data: ParallelData) -> None:
    payload = {
        "types": ["en", "zh"],
        "ids": ["a", "b", "c"],
        "items": [["dog", "狗"], ["cat", "猫"], ["red, bright", "红"]],
        "meta": [r["meta"] for r in RECORDS],
    }
    encoded = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert data.content_hash() == hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def test_content_hash_stable_and_sensitive(data: ParallelData) -> None:
    again = ParallelData.from_records([dict(r) for r in RECORDS], name="renamed")
    assert again.content_hash() == data.content_hash()
    assert hash(again) == hash(data)
    changed = [dict(r) for r in RECORDS]
    changed[1] = {**changed[1], "en": "cab"}
    assert ParallelData.from_records(changed).content_hash() != data.content_hash()
    changed_meta = [dict(r) for r in RECORDS]
    changed_meta[0] = {**changed_meta[0], "meta": {"pos": "nouN", "n": [1, 2]}}
    assert ParallelData.from_records(changed_meta).content_hash() != data.content_hash()
    changed_id = [dict(r) for r in RECORDS]
    changed_id[2] = {**changed_id[2], "id": "d"}
    assert ParallelData.from_records(changed_id).content_hash() != data.content_hash()


# ---------------------------------------------------------------------------- validation


def test_fewer_than_two_types() -> None:
    with pytest.raises(ParallelDataError, match="at least two data types"):
        ParallelData.from_records([{"en": "dog"}])
    with pytest.raises(ParallelDataError, match="argument 'types'.*at least two"):
        ParallelData.from_records([{"en": "dog", "zh": "狗"}], types=["en"])


def test_fewer_than_two_types_in_tsv_header(tmp_path: Path) -> None:
    path = _write_delimited(tmp_path / "one.tsv", [["id", "en"], ["1", "dog"]], "\t")
    with pytest.raises(ParallelDataError, match=r"one\.tsv, line 1 \(header\).*two data types"):
        ParallelData.from_tsv(path)


def test_missing_field_names_line(tmp_path: Path) -> None:
    rows = [{"en": "dog", "zh": "狗"}, {"en": "cat", "zh": "猫"}, {"en": "tree"}]
    path = _write_jsonl(tmp_path / "m.jsonl", rows)
    with pytest.raises(ParallelDataError, match=r"m\.jsonl, line 3: misaligned.*missing.*'zh'"):
        ParallelData.from_jsonl(path)


def test_extra_field_is_misaligned() -> None:
    rows = [{"en": "dog", "zh": "狗"}, {"en": "cat", "zh": "猫", "fr": "chat"}]
    with pytest.raises(ParallelDataError, match=r"records\[1\]: misaligned.*extra.*'fr'"):
        ParallelData.from_records(rows)


def test_tsv_row_with_wrong_field_count(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("en\tzh\ndog\t狗\ncat\n", encoding="utf-8")
    with pytest.raises(ParallelDataError, match=r"bad\.tsv, line 3: 1 fields.*misaligned"):
        ParallelData.from_tsv(path)


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_empty_or_whitespace_strings(value: str) -> None:
    with pytest.raises(ParallelDataError, match=r"records\[0\]: field 'zh' is empty or whitespace"):
        ParallelData.from_records([{"en": "dog", "zh": value}])


def test_empty_csv_value_names_line(tmp_path: Path) -> None:
    path = _write_delimited(tmp_path / "e.csv", [["en", "zh"], ["dog", "狗"], ["cat", " "]], ",")
    with pytest.raises(ParallelDataError, match=r"e\.csv, line 3: field 'zh' is empty"):
        ParallelData.from_csv(path)


def test_duplicate_ids_name_both_lines(tmp_path: Path) -> None:
    rows = [{"id": "x", "en": "dog", "zh": "狗"}, {"id": "y", "en": "a", "zh": "b"}]
    rows.append({"id": "x", "en": "cat", "zh": "猫"})
    path = _write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(ParallelDataError, match=r"line 3: duplicate id 'x'.*line 1"):
        ParallelData.from_jsonl(path)


def test_duplicate_ids_in_direct_construction() -> None:
    with pytest.raises(ParallelDataError, match="duplicate id 'a'"):
        ParallelData(types=("en", "zh"), items=({"en": "a", "zh": "b"},) * 2, ids=("a", "a"))


def test_some_ids_missing() -> None:
    rows = [{"id": "1", "en": "dog", "zh": "狗"}, {"en": "cat", "zh": "猫"}]
    with pytest.raises(ParallelDataError, match=r"records\[1\]: missing 'id'"):
        ParallelData.from_records(rows)


def test_empty_data_sets(tmp_path: Path) -> None:
    with pytest.raises(ParallelDataError, match="no items"):
        ParallelData.from_records([])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ParallelDataError, match=r"empty\.jsonl holds no items"):
        ParallelData.from_jsonl(empty)
    header_only = _write_delimited(tmp_path / "h.tsv", [["en", "zh"]], "\t")
    with pytest.raises(ParallelDataError, match="header but no items"):
        ParallelData.from_tsv(header_only)
    blank = tmp_path / "blank.csv"
    blank.write_text("", encoding="utf-8")
    with pytest.raises(ParallelDataError, match="empty CSV file"):
        ParallelData.from_csv(blank)
    with pytest.raises(ParallelDataError, match="is empty"):
        ParallelData(types=("en", "zh"), items=(), ids=())


def test_require(data: ParallelData) -> None:
    assert data.require(2, statistic="baseline-adjusted cosine") is data
    one = data.subset(1)
    with pytest.raises(
        ParallelDataError, match=r"baseline-adjusted cosine needs at least 2 items.*has 1"
    ):
        one.require(2, statistic="baseline-adjusted cosine")
    with pytest.raises(ParallelDataError, match="95% CI needs at least 2"):
        one.require(2, statistic="a 95% CI")


def test_unknown_builtin_lists_available() -> None:
    with pytest.raises(ParallelDataError, match="unknown built-in data set 'wordz'") as info:
        ParallelData.load("wordz")
    for name in BUILTIN_DATASETS:
        assert name in str(info.value)


def test_unsupported_suffix_and_source_type(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(ParallelDataError, match=r"unsupported file suffix '\.xlsx'.*\.jsonl"):
        ParallelData.load(path)
    with pytest.raises(ParallelDataError, match="cannot load parallel data from a int"):
        ParallelData.load(42)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParallelDataError, match="no such file"):
        ParallelData.load(tmp_path / "nope.jsonl")


@pytest.mark.parametrize("value", [3, 2.5, None, ["dog"], True])
def test_non_string_values(value: object) -> None:
    with pytest.raises(ParallelDataError, match=r"records\[0\]: field 'zh' must be a string"):
        ParallelData.from_records([{"en": "dog", "zh": value}])


def test_non_string_value_in_jsonl_names_line(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "n.jsonl", [{"numeral": "3", "words": "three"}])
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"numeral": 4, "words": "four"}\n')
    with pytest.raises(ParallelDataError, match=r"n\.jsonl, line 2: field 'numeral' must be"):
        ParallelData.from_jsonl(path)


def test_malformed_json_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"en": "dog", "zh": "狗"}\n{"en": "cat", "zh": 猫}\n', encoding="utf-8")
    with pytest.raises(ParallelDataError, match=r"bad\.jsonl, line 2: malformed JSON"):
        ParallelData.from_jsonl(path)
    path.write_text('["dog", "狗"]\n', encoding="utf-8")
    with pytest.raises(ParallelDataError, match="line 1: expected a JSON object, got list"):
        ParallelData.from_jsonl(path)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.tsv"
    path.write_bytes("en\tfr\ncafé\tcafé\n".encode("latin-1"))
    with pytest.raises(ParallelDataError, match="not valid UTF-8"):
        ParallelData.from_tsv(path)


def test_duplicate_header_column(tmp_path: Path) -> None:
    path = _write_delimited(tmp_path / "dup.csv", [["en", "en", "zh"], ["a", "b", "c"]], ",")
    with pytest.raises(ParallelDataError, match="header repeats column 'en'"):
        ParallelData.from_csv(path)


def test_meta_must_be_json_serialisable() -> None:
    with pytest.raises(ParallelDataError, match="JSON-serialisable"):
        ParallelData.from_records([{"en": "a", "zh": "b", "meta": {"x": object()}}])
    with pytest.raises(ParallelDataError, match="must be an object"):
        ParallelData.from_records([{"en": "a", "zh": "b", "meta": [1]}])


def test_bad_access_arguments(data: ParallelData) -> None:
    with pytest.raises(ParallelDataError, match="unknown data type 'fr'.*en, zh"):
        data.column("fr")
    with pytest.raises(ParallelDataError, match="argument 'b'"):
        data.pairs("en", "de")
    with pytest.raises(ParallelDataError, match="no meta field 'result'"):
        data.meta_column("result")
    with pytest.raises(ParallelDataError, match="out of range"):
        data.select([3])
    with pytest.raises(ParallelDataError, match="repeated"):
        data.select([0, -3])
    with pytest.raises(ParallelDataError, match="positive int"):
        data.subset(0)
    with pytest.raises(ParallelDataError, match="positive int"):
        list(data.batches(0))
