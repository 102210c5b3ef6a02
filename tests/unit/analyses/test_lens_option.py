"""``lens=`` on every lens analysis: today's numbers under the logit lenses, two lenses in one scan.

The golden numbers (``lens_option_golden.json``) were written by the code BEFORE ``lens=``
existed (``python -m tests.helpers.lens_option_cases`` on commit 813e554's parent code), so
"``lens="logit"`` gives exactly today's numbers" is checked against the old code's output,
not against the new code's. The existing analysis tests compare the same analyses with a
hand-computed logit lens on plain transformers hidden states.
"""

from __future__ import annotations

import json
import math

import pytest

from tests.helpers.lens_option_cases import CASES, GOLDEN, run_case

GOLDEN_ROWS = json.loads(GOLDEN.read_text(encoding="utf-8"))
KEYS = sorted(GOLDEN_ROWS)


def _same(rows, expected, *, lens: str) -> None:
    """Rows equal the golden rows (same order, numbers to 1e-6 of the row's scale) and carry
    ``lens``.

    The scale is the largest of |mean|, |ci_low|, |ci_high|: a CI end is mean ± half-width, so
    when the two nearly cancel (a mean of -6.86 with half-width 6.15) the end inherits their
    absolute fp32 error (reduction order changes with the thread count), not a relative one.
    """
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert list(row[:4]) == want[:4]
        assert row[7] == want[7]  # n
        finite = [abs(v) for v in want[4:7] if v is not None and not math.isnan(v)]
        scale = max(finite, default=0.0)
        for got, ref in zip(row[4:7], want[4:7], strict=True):
            if ref is None or (isinstance(ref, float) and math.isnan(ref)):
                assert got is None or math.isnan(got)
            else:
                assert math.isclose(got, ref, rel_tol=1e-6, abs_tol=1e-6 * scale + 1e-7), (
                    row,
                    want,
                )
        assert row[8] == lens


@pytest.mark.parametrize("key", KEYS)
def test_default_and_named_logit_lens_give_todays_numbers(key):
    case, arch, norm = key.split("/")
    final_norm = norm == "True"
    name = "logit" if final_norm else "logit-raw"
    expected = GOLDEN_ROWS[key]
    _same(run_case(case, arch, final_norm=final_norm), expected, lens=name)  # lens=None
    _same(run_case(case, arch, lens=name), expected, lens=name)


@pytest.mark.parametrize("case", list(CASES))
def test_two_lenses_in_one_scan_equal_two_scans(case):
    """One scan with ["logit-raw", "logit"]: each lens's rows equal its own separate scan."""
    rows = run_case(case, "llama", lens=["logit-raw", "logit"])
    raw = [r for r in rows if r[8] == "logit-raw"]
    normed = [r for r in rows if r[8] == "logit"]
    assert len(raw) + len(normed) == len(rows)
    assert rows[: len(raw)] == raw  # lens-major order, in the order lens= gave
    _same(raw, GOLDEN_ROWS[f"{case}/llama/False"], lens="logit-raw")
    _same(normed, GOLDEN_ROWS[f"{case}/llama/True"], lens="logit")


def test_similarity_rows_have_an_empty_lens():
    from hublens import semantic_hub_scan
    from hublens.data import ParallelData
    from tests.helpers.lens_option_cases import SENTENCES, model_for

    model, _ = model_for("probe")
    data = ParallelData.from_records(SENTENCES, name="s")
    result = semantic_hub_scan(model, data, analyses=["similarity"], progress=False, check=False)
    assert {r.lens for r in result.rows} == {""}
    assert result.lenses == []
