"""``hublens.check`` catches each defect it exists for, simulated on tiny random models.

Each defect is made on purpose and must fail its check: a lens that reuses one row's norm scale
(TransformerLens #1076), a hook left attached (#1323), a tokenizer whose probe words collide, a
model whose states depend on padding. A clean tiny model passes every check.
"""

from __future__ import annotations

import json

import pytest
import torch

import hublens
from hublens.check import CHECKS, check
from hublens.hooks import LogitLens, attached_hooks
from tests.conftest import build_tiny
from tests.helpers.probe_tokenizer import probe_tokenizer


@pytest.fixture(scope="module")
def clean():
    hf, _, tok = build_tiny("llama", tokenizer=probe_tokenizer())
    return hublens.load_model(hf, tok)


def test_clean_tiny_model_passes_every_check(clean):
    report = check(clean)
    assert report.passed, report.to_text()
    assert {r.name.split(".")[0] for r in report.results} >= {
        "hooks",
        "numerics",
        "tokens",
        "inputs",
        "steering",
        "cost",
    }
    assert report["numerics.dtype_lens"].status == "skip"
    assert (
        report["steering.kv_cache"].data["cached"] == report["steering.kv_cache"].data["uncached"]
    )
    assert attached_hooks(clean) == []


class CachedScaleNorm(torch.nn.Module):
    """The #1076 defect: the final norm's per-row statistics taken from the first row only."""

    def __init__(self, norm: torch.nn.Module) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        factor = self.norm(x[:1]) / x[:1]  # weight * rsqrt(mean(x0^2)) of row 0, per element
        return x * factor


def test_lens_reusing_cached_norm_scale_fails(clean):
    good = LogitLens.from_model(clean, final_norm=False)
    bad = LogitLens(
        good.weight,
        good.bias,
        CachedScaleNorm(clean.final_norm),
        good.softcap,
        final_norm=False,
        n_layers=clean.n_layers,
    )
    assert check(clean, only=["numerics.last_layer_lens"], lens=good).passed
    result = check(clean, only=["numerics.last_layer_lens"], lens=bad)["numerics.last_layer_lens"]
    assert result.status == "fail"
    assert result.value > 100 * result.threshold


def test_left_attached_hook_fails_and_is_named(clean):
    clean.bridge.add_hook("blocks.1.hook_resid_post", lambda x, hook: x)
    try:
        report = check(clean, only=["hooks.before", "hooks.after"])
    finally:
        clean.bridge.reset_hooks()
    assert report["hooks.before"].status == "fail"
    assert report["hooks.after"].status == "fail"
    assert [n for n in report["hooks.before"].data["attached"] if n.startswith("blocks.1.")]
    assert check(clean, only=["hooks.before"]).passed


def test_colliding_probe_words_fail():
    hf, _, tok = build_tiny("llama")  # the 400-entry conftest tokenizer: " c", " d", ... prefixes
    model = hublens.load_model(hf, tok)
    report = check(model, only=["tokens"])
    assert report["tokens.first_shared.en"].status == "fail"
    assert report["tokens.cross_language"].status == "fail"
    assert not report.passed
    # Independent count: English probe words whose first token another English word shares.
    from hublens.data.builtin import load_builtin

    words = load_builtin("multilingual-words").column("en")
    first = [tok.encode(" " + w, add_special_tokens=False)[0] for w in words]
    shared = sum(first.count(f) > 1 for f in first) / len(words)
    assert report["tokens.first_shared.en"].value == pytest.approx(shared)


def test_padding_dependent_model_fails():
    hf, _, tok = build_tiny("llama", tokenizer=probe_tokenizer())
    model = hublens.load_model(hf, tok)
    embed = model.bridge.original_model.model.embed_tokens
    # A model that mixes every position into each token (padding included): a plain torch hook
    # on the HF module, invisible to TransformerLens's hook points.
    handle = embed.register_forward_hook(lambda mod, args, out: out + 0.5 * out.mean(1, True))
    try:
        report = check(model, only=["inputs.padding", "hooks.before"])
    finally:
        handle.remove()
    assert report["hooks.before"].status == "pass"
    assert report["inputs.padding"].status == "fail"
    assert report["inputs.padding"].value > 100
    assert check(model, only=["inputs.padding"]).passed


def test_bf16_model_reports_its_lens_error():
    hf, _, tok = build_tiny("llama", tokenizer=probe_tokenizer())
    model = hublens.load_model(hf, tok, dtype=torch.bfloat16)
    report = check(model, only=["numerics.last_layer_lens", "numerics.dtype_lens"])
    dtype = report["numerics.dtype_lens"]
    assert dtype.status in ("pass", "warn") and dtype.value is not None and dtype.value > 0
    assert report["numerics.last_layer_lens"].status == "pass", report.to_text()


def test_bad_arguments_are_refused_before_any_forward(clean):
    with pytest.raises(ValueError, match="only="):
        check(clean, only=["numerics.nope"])
    with pytest.raises(ValueError, match="batch_size"):
        check(clean, batch_size=0)
    assert set(CHECKS) >= {"hooks.before", "hooks.after", "tokens"}


def test_report_json_and_scan_provenance(tmp_path):
    from hublens.data import ParallelData

    hf, _, tok = build_tiny("llama", tokenizer=probe_tokenizer())
    clean = hublens.load_model(hf, tok)
    check(clean, only=["hooks.before"])  # a partial check is not what a scan records

    data = ParallelData.from_records(
        [{"id": str(i), "en": f"the cat {i}", "fr": f"le chat {i}"} for i in range(4)]
    )
    quick = hublens.semantic_hub_scan(clean, data, analyses=["similarity"], progress=False)
    assert quick.provenance["check"]["quick"] is True
    assert quick.provenance["check"]["passed"] is True
    full = check(clean)
    path = full.save(tmp_path / "check.json")
    saved = json.loads(path.read_text())
    assert saved["summary"]["passed"] and len(saved["results"]) == len(full.results)
    scanned = hublens.semantic_hub_scan(clean, data, analyses=["similarity"], progress=False)
    assert scanned.provenance["check"] == full.summary()
    none = hublens.semantic_hub_scan(
        clean, data, analyses=["similarity"], progress=False, check=False
    )
    assert "check" not in none.provenance
    html = scanned.save(tmp_path / "report").read_text()
    assert "check" in html and "passed" in html


def test_cli_check_exit_status_and_json(tmp_path):
    from hublens.cli import main

    hf, _, tok = build_tiny("llama", tokenizer=probe_tokenizer())
    good = tmp_path / "good"
    hf.save_pretrained(good, safe_serialization=True)
    tok.save_pretrained(good)
    out = tmp_path / "check.json"
    assert main(["check", str(good), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["summary"]["passed"] is True
    hf2, _, bad_tok = build_tiny("llama")
    bad = tmp_path / "bad"
    hf2.save_pretrained(bad, safe_serialization=True)
    bad_tok.save_pretrained(bad)
    assert main(["check", str(bad), "--only", "tokens"]) == 1
