"""``hublens scan --lens`` and ``hublens lens --lens`` on a tiny model saved to a folder."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from hublens.cli import main
from hublens.data import ParallelData
from tests.helpers.lens_option_cases import WORDS


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    from tests.conftest import build_tiny
    from tests.helpers.lens_option_cases import EXTRA

    root = tmp_path_factory.mktemp("lens_cli")
    hf, _, tokenizer = build_tiny("llama", extra_corpus=EXTRA)
    hf.save_pretrained(root / "model", safe_serialization=True)
    tokenizer.save_pretrained(root / "model")
    ParallelData.from_records(WORDS, name="w").to_jsonl(root / "words.jsonl")
    return root


def test_bad_lens_names_fail_before_loading_a_model(capsys):
    assert main(["scan", "--lens", "logit,tunned", "--model", "/nonexistent"]) == 2
    err = capsys.readouterr().err
    assert "--lens" not in err or "tunned" in err
    assert "valid names: logit, logit-raw, tuned, jacobian" in err
    assert main(["scan", "--lens", "logit,logit", "--model", "/nonexistent"]) == 2
    assert "more than once" in capsys.readouterr().err
    assert main(["lens", "--lens", "nope", "--model", "/nonexistent"]) == 2
    assert "valid names" in capsys.readouterr().err


def test_scan_with_two_lenses_equals_two_python_scans(folder, capsys):
    import hublens
    from hublens import semantic_hub_scan
    from hublens.analyses import TranslationLens

    out = folder / "two"
    code = main([
        "scan", "--model", str(folder / "model"), "--data", str(folder / "words.jsonl"),
        "--analyses", "translation_lens", "--lens", "logit-raw,logit", "--out", str(out),
        "--no-progress", "--no-grids",
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "logit-raw" in printed  # the summary keeps the lenses apart
    table = pd.read_csv(out / "result.csv")
    assert list(table["lens"].unique()) == ["logit-raw", "logit"]
    model = hublens.load_model(folder / "model")
    data = ParallelData.load(folder / "words.jsonl")
    for name in ("logit", "logit-raw"):
        alone = semantic_hub_scan(model, data, analyses=[TranslationLens(lens=name)],
                                  progress=False, check=False).table()  # fmt: skip
        got = table[table["lens"] == name].reset_index(drop=True)
        assert len(got) == len(alone)
        assert (got["mean"] - alone["mean"]).abs().max() < 1e-6
    saved = json.loads((out / "result.json").read_text(encoding="utf-8"))
    assert saved["provenance"]["lenses"] == {
        "requested": ["logit-raw", "logit"],
        "ran": ["logit-raw", "logit"],
    }
    assert saved["options"]["translation_lens"]["lenses"]["logit-raw"]["kind"] == "logit-raw"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "p_target · fr-&gt;zh · logit-raw" in page  # legend names, escaped
    assert "lenses: logit-raw (solid), logit (dash)" in page


def test_scan_without_lens_records_that_no_tuned_lens_was_found(folder):
    out = folder / "auto"
    code = main([
        "scan", "--model", str(folder / "model"), "--data", str(folder / "words.jsonl"),
        "--analyses", "translation_lens", "--out", str(out), "--no-progress", "--no-grids",
    ])  # fmt: skip
    assert code == 0
    saved = json.loads((out / "result.json").read_text(encoding="utf-8"))
    record = saved["provenance"]["lenses"]
    assert record["requested"] == "auto" and record["ran"] == ["logit"]
    assert record["tuned"].startswith("not found") and "hublens fit-lens" in record["tuned"]
    assert {row["lens"] for row in saved["rows"]} == {"logit"}


def test_prompt_lens_reads_several_lenses_off_one_forward(folder, capsys):
    path = folder / "lens.json"
    code = main([
        "lens", "--model", str(folder / "model"), "--lens", "logit,logit-raw",
        "--word", "zh=花", "--word", "en=flower", "--json", str(path),
    ])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "lens: logit (final norm: True)" in printed
    assert "lens: logit-raw (final norm: False)" in printed
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert [x["lens"] for x in payload["lenses"]] == ["logit", "logit-raw"]
    assert payload["lenses"][0]["probs"] != payload["lenses"][1]["probs"]
    code = main(["lens", "--model", str(folder / "model"), "--no-final-norm", "--json", str(path)])
    assert code == 0
    single = json.loads(path.read_text(encoding="utf-8"))
    assert single["lens"] == "logit-raw" and single["final_norm"] is False
    assert single["probs"] == payload["lenses"][1]["probs"]


def test_scan_without_lens_adds_the_tuned_lens_when_one_is_cached(folder, monkeypatch):
    """The main job's rule: a cached tuned lens is read beside the logit lens, never fitted.

    The lens here is the untrained tuned lens (A, b zero), which is the logit lens with the
    final norm, so its rows must equal the logit rows of the same scan.
    """
    pytest.importorskip("hublens.lenses.tuned")
    import hublens
    from hublens.cache import CACHE_ENV
    from hublens.lenses.store import cache_folder
    from hublens.lenses.tuned import TunedLens

    monkeypatch.setenv(CACHE_ENV, str(folder / "cache"))
    model = hublens.load_model(folder / "model")
    TunedLens.identity(model).save(cache_folder(model, "tuned"))
    out = folder / "auto-tuned"
    code = main([
        "scan", "--model", str(folder / "model"), "--data", str(folder / "words.jsonl"),
        "--analyses", "translation_lens", "--out", str(out), "--no-progress", "--no-grids",
    ])  # fmt: skip
    assert code == 0
    saved = json.loads((out / "result.json").read_text(encoding="utf-8"))
    record = saved["provenance"]["lenses"]
    assert record["ran"] == ["logit", "tuned"] and record["tuned"].startswith("found")
    assert saved["options"]["translation_lens"]["lenses"]["tuned"]["kind"] == "tuned"
    table = pd.read_csv(out / "result.csv")
    logit = table[table["lens"] == "logit"].reset_index(drop=True)
    tuned = table[table["lens"] == "tuned"].reset_index(drop=True)
    assert len(logit) == len(tuned) > 0
    assert (logit["mean"] - tuned["mean"]).abs().max() < 1e-5
