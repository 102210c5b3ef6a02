"""Analyses by name: the registry, its errors, and scans over names and objects mixed."""

from __future__ import annotations

import pytest
import torch

import hublens.analyses as analyses_pkg
from hublens import semantic_hub_scan
from hublens.analyses import Similarity, TranslationLens
from hublens.analysis import Analysis
from hublens.data import ParallelData
from hublens.hooks import attached_hooks
from hublens.registry import (
    analysis_names,
    make_analysis,
    register_analysis,
    resolve_analyses,
)
from tests.helpers.lens_reference import hidden_states, token_ids

RECORDS = [
    {"en": "The cat sleeps on the warm mat.", "zh": "猫在温暖的垫子上睡觉。"},
    {"en": "three plus two equals five", "zh": "三加二等于五"},
    {"en": "flower", "zh": "花"},
    {"en": "def add(a, b): return a + b", "zh": "加法"},
]

#: Registered name -> the class it builds (every built-in analysis).
EXPECTED = {
    "similarity": "Similarity",
    "similarity_centered": "Similarity",
    "translation_lens": "TranslationLens",
    "word_lens": "WordLens",
    "arithmetic_lens": "ArithmeticProbe",
    "code_list_lens": "CodeListProbe",
    "code_args_lens": "CodeArgsProbe",
    "semantics_role_lens": "SemanticsRoleProbe",
    "language_probability": "LanguageProbability",
    "chinese_running_text": "ChineseRunningText",
    "modality_lens": "ModalityLens",
}


def test_every_analysis_is_registered_and_importable_from_the_package():
    assert set(EXPECTED) <= set(analysis_names())
    for name, cls_name in EXPECTED.items():
        cls = getattr(analyses_pkg, cls_name)  # `from hublens.analyses import <cls_name>`
        analysis = make_analysis(name)
        assert type(analysis) is cls and issubclass(cls, Analysis)
        assert analysis.name == name  # the result's analysis column is the name asked for
        assert make_analysis(name) is not analysis  # fresh objects: no state shared
    assert make_analysis("similarity_centered").centered
    assert make_analysis("translation_lens", source="de", few_shot=0).source == "de"


def _count_module_calls():
    calls = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: calls.append(type(module).__name__)
    )
    return calls, handle


def test_unknown_name_lists_the_valid_names_before_any_forward(tiny_llama):
    model, _ = tiny_llama
    data = ParallelData.from_records(RECORDS, name="mini")
    calls, handle = _count_module_calls()
    try:
        with pytest.raises(ValueError, match="unknown analysis name 'simlarity'") as info:
            semantic_hub_scan(model, data, analyses=["similarity", "simlarity"], progress=False)
        with pytest.raises(ValueError, match=r"analyses='similarity': pass a list"):
            semantic_hub_scan(model, data, analyses="similarity", progress=False)
        with pytest.raises(ValueError, match=r"analyses\[1\]=3: pass an analysis name"):
            resolve_analyses(["similarity", 3])  # the scan's check (untyped callers)
    finally:
        handle.remove()
    assert calls == []
    for name in EXPECTED:
        assert name in str(info.value)
    assert attached_hooks(model) == []


def _last_states(reference, model, texts):
    """(L, n, d); the last layer is the model's normed output (similarity's default)."""
    rows = [hidden_states(reference, torch.tensor([token_ids(model, t)]))[:, -1] for t in texts]
    rows = [torch.cat([r[:-1], reference.model.norm(r[-1:]).detach()]) for r in rows]
    return torch.stack(rows, dim=1).double()  # (L, n, d)


def _cued(texts, cue, end):
    """The default cue rule: the cue only after sentence-final punctuation."""
    return [t + cue if t.endswith(end) else t for t in texts]


def _adjusted_mean(x, y):
    """Eq. 1 on the full cosine matrix: mean over items of cos_ii - mean_{j!=i} cos_ij."""
    xn, yn = x / x.norm(dim=-1, keepdim=True), y / y.norm(dim=-1, keepdim=True)
    cos = torch.einsum("lid,ljd->lij", xn, yn)
    n = cos.shape[-1]
    diag = cos.diagonal(dim1=-2, dim2=-1)
    return (diag - (cos.sum(-1) - diag) / (n - 1)).mean(-1)


def test_names_and_objects_mixed_equal_plain_transformers(tiny_llama):
    model, reference = tiny_llama
    data = ParallelData.from_records(RECORDS, name="mini")
    result = semantic_hub_scan(
        model,
        data,
        analyses=["similarity", Similarity(name="no_cue", cues={})],
        batch_size=3,
        progress=False,
    )
    assert {r.analysis for r in result.rows} == {"similarity", "no_cue"}
    en, zh = data.column("en"), data.column("zh")
    cued = _adjusted_mean(  # the name means the default options: the paper's cues appended
        _last_states(reference, model, _cued(en, " This represents", ".")),
        _last_states(reference, model, _cued(zh, "这代表了", "。")),
    )
    plain = _adjusted_mean(_last_states(reference, model, en), _last_states(reference, model, zh))
    for analysis, expected in (("similarity", cued), ("no_cue", plain)):
        rows = {
            r.layer: r
            for r in result.select(analysis, group="en-zh")
            if r.metric == "adjusted_cosine"
        }
        assert sorted(rows) == list(range(model.n_layers))
        for layer, row in rows.items():
            assert abs(row.mean - expected[layer].item()) < 1e-4
    assert abs(cued - plain).max() > 1e-3  # the cues changed the inputs: the name was resolved
    assert attached_hooks(model) == []


def test_third_party_registration_and_duplicate_names(monkeypatch):
    import hublens.registry as registry

    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))
    register_analysis("fr_translation", lambda **kw: TranslationLens(name="fr_translation", **kw))
    lens = make_analysis("fr_translation", target="en", few_shot=1)
    assert isinstance(lens, TranslationLens) and lens.target == "en" and lens.few_shot == 1
    assert "fr_translation" in analysis_names()
    with pytest.raises(ValueError, match="taken"):
        register_analysis("similarity", TranslationLens)
    with pytest.raises(ValueError, match="non-empty"):
        register_analysis("", Similarity)


def test_cli_scan_takes_analysis_names(tmp_path, capsys):
    import pandas as pd

    from hublens.cli import main
    from tests.conftest import build_tiny

    assert main(["scan", "--analyses", "similarity,simlarity"]) == 2  # before any model load
    assert "unknown analysis name 'simlarity'" in capsys.readouterr().err
    hf, reference, tokenizer = build_tiny("llama", seed=2)
    hf.save_pretrained(tmp_path / "model", safe_serialization=True)
    tokenizer.save_pretrained(tmp_path / "model")
    data = ParallelData.from_records(RECORDS, name="mini")
    data.to_jsonl(tmp_path / "data.jsonl")
    code = main([
        "scan", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "data.jsonl"),
        "--analyses", "similarity", "--out", str(tmp_path / "out"), "--no-progress",
    ])  # fmt: skip
    assert code == 0
    table = pd.read_csv(tmp_path / "out" / "result.csv")
    assert set(table["analysis"]) == {"similarity"}
    import hublens

    model = hublens.load_model(tmp_path / "model")
    expected = _adjusted_mean(
        _last_states(reference, model, _cued(data.column("en"), " This represents", ".")),
        _last_states(reference, model, _cued(data.column("zh"), "这代表了", "。")),
    )
    rows = table[table["metric"] == "adjusted_cosine"].set_index("layer")["mean"]
    for layer, value in rows.items():
        assert abs(value - expected[int(layer)].item()) < 1e-4
