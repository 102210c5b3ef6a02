"""Hardening of data parsing: quoted newlines, linear id parsing, built-in identity, CSV cells."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from hublens.data import ParallelData, load_builtin


def test_csv_keeps_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text('id,en,zh\n1,"a cat\nsleeps, well",猫睡觉\n2,dog,狗\n', encoding="utf-8")
    data = ParallelData.from_csv(path)
    assert data.column("en") == ["a cat\nsleeps, well", "dog"]
    assert data.ids == ("1", "2")


def test_csv_quoted_crlf_newline_and_error_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_bytes('id,en,zh\r\n1,"two\r\nlines",两行\r\n2,x\r\n'.encode())
    try:
        ParallelData.from_csv(path)
    except ValueError as exc:
        # the bad row starts on physical line 4 (the quoted field spans lines 2-3)
        assert "line 4" in str(exc), exc
    else:
        raise AssertionError("a row with 2 fields was accepted")
    path.write_bytes('id,en,zh\r\n1,"two\r\nlines",两行\r\n'.encode())
    assert ParallelData.from_csv(path).column("en") == ["two\r\nlines"]


def _cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def test_jsonl_with_ids_parses_in_linear_time(tmp_path: Path) -> None:
    n = 50_000
    with_ids = tmp_path / "ids.jsonl"
    without = tmp_path / "plain.jsonl"
    with_ids.write_text(
        "".join(json.dumps({"id": f"i{k}", "en": f"w{k}", "zh": f"字{k}"}) + "\n" for k in range(n))
    )
    without.write_text(
        "".join(json.dumps({"en": f"w{k}", "zh": f"字{k}"}) + "\n" for k in range(n))
    )
    plain = _cpu(lambda: ParallelData.from_jsonl(without))
    ids = _cpu(lambda: ParallelData.from_jsonl(with_ids))
    # today's quadratic all(has_ids) made this about 10x; linear parsing keeps it near 1x
    assert ids < 2.0 * plain, (ids, plain)


def test_user_file_named_like_a_builtin_is_not_the_builtin(tmp_path: Path) -> None:
    from hublens.analyses.defaults import default_analyses

    path = tmp_path / "arithmetic.jsonl"
    path.write_text(
        json.dumps({"en": "three plus two", "zh": "三加二"})
        + "\n"
        + json.dumps({"en": "four", "zh": "四"})
        + "\n",
        encoding="utf-8",
    )
    user = ParallelData.load(path)
    assert user.name == "arithmetic" and user.builtin is None
    assert [a.name for a in default_analyses(user)] == ["similarity"]
    same_name = ParallelData.from_records(user.to_records(), name="multilingual-sentences")
    assert [a.name for a in default_analyses(same_name)] == ["similarity"]

    real = load_builtin("arithmetic")
    assert real.builtin == "arithmetic"
    assert [a.name for a in default_analyses(real)] == [
        "similarity",
        "similarity_grouped",
        "arithmetic_lens",
    ]
    assert real.subset(5).builtin == "arithmetic"  # a subset of a built-in keeps its identity
    assert real.content_hash() == ParallelData.from_records(real.to_records()).content_hash()


def test_result_csv_neutralises_formula_cells_keeps_numbers(tmp_path: Path) -> None:
    from hublens.analyses.base import Row
    from hublens.results import ScanResult

    rows = [
        Row('=HYPERLINK("http://x")', 0, "+cmd", "@SUM(A1)", -0.5, -1.0, 0.25, 3),
        Row("similarity", 1, "adjusted_cosine", "-en-zh", 0.1, -0.2, 0.3, 3),
    ]
    result = ScanResult(rows, {"data": {"name": "=evil"}}, {}, {})
    result.save(tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "result.csv", keep_default_na=False)
    assert table["analysis"].tolist() == ['\'=HYPERLINK("http://x")', "similarity"]
    assert table["metric"].tolist() == ["'+cmd", "adjusted_cosine"]
    assert table["group"].tolist() == ["'@SUM(A1)", "'-en-zh"]
    assert table["mean"].tolist() == [-0.5, 0.1]  # negative numbers stay numbers
    assert table["ci_low"].tolist() == [-1.0, -0.2]
