"""Fitting in slices: TL's merge equals the fit on all prompts; resumable; the quality curve."""

from __future__ import annotations

import json

import pytest
import torch

from hublens.lenses.artifact import LensArtifactError
from hublens.lenses.fit_jacobian import fit_jacobian
from tests.helpers.jacobian_lens import HELDOUT, MAX_SEQ, PROMPTS, SKIP, fit_tl, tiny_model
from tests.helpers.lens_reference import hidden_states, lens_logprobs


@pytest.fixture(scope="module")
def llama():
    """(HubModel, reference HF model, TL lens fitted on all PROMPTS)."""
    model, reference = tiny_model("llama")
    return model, reference, fit_tl(model)


def _close(a, b):
    for layer in b.source_layers:
        torch.testing.assert_close(a.jacobians[layer], b.jacobians[layer], rtol=0, atol=1e-5)


def test_merge_of_two_slices_equals_fit_on_all_prompts(llama):
    """TL's n_prompts-weighted mean of a 2-prompt and a 3-prompt slice = the 5-prompt fit."""
    from transformer_lens.tools.analysis import JacobianLens

    model, _, whole = llama
    merged = JacobianLens.merge([fit_tl(model, PROMPTS[:2]), fit_tl(model, PROMPTS[2:])])
    assert merged.n_prompts == 5
    _close(merged, whole)


def _fit(model, out, prompts=PROMPTS, logs=None):
    return fit_jacobian(
        model,
        prompts,
        heldout=HELDOUT,
        slice_size=2,
        out_dir=out,
        corpus={"name": "tiny-test", "sha256": "0" * 64},
        max_seq_len=MAX_SEQ,
        dim_batch=16,
        skip_first_positions=SKIP,
        command="test",
        show_progress=False,
        log=(logs.append if logs is not None else lambda _: None),
    )


def test_fit_in_slices_equals_fit_on_all_and_resumes(llama, tmp_path):
    model, _, whole = llama
    lens = _fit(model, tmp_path / "lens")
    _close(lens.tl_lens, whole)
    slices = sorted((tmp_path / "lens.slices").iterdir())
    assert [p.name for p in slices] == ["slice_0000", "slice_0001", "slice_0002"]
    stamps = [(p / "lens.safetensors").stat().st_mtime_ns for p in slices]
    logs: list[str] = []
    again = _fit(model, tmp_path / "lens", logs=logs)
    assert sum("already fitted" in line for line in logs) == 3
    assert [(p / "lens.safetensors").stat().st_mtime_ns for p in slices] == stamps
    _close(again.tl_lens, whole)
    with pytest.raises(LensArtifactError, match="fitted on other prompts"):
        _fit(model, tmp_path / "lens", prompts=list(reversed(PROMPTS)))


def test_quality_curve_is_recorded_and_its_kl_is_right(llama, tmp_path):
    """One curve point per slice; the recorded held-out KL equals an independent HF one."""
    model, reference, _ = llama
    _fit(model, tmp_path / "lens")
    fit = json.loads((tmp_path / "lens" / "lens.json").read_text())["fit"]
    curve = fit["quality_curve"]
    assert [p["n_prompts"] for p in curve] == [2, 4, 5]
    assert "top1_agreement_with_previous" not in curve[0]
    assert all(len(p["top1_agreement_with_previous"]) == model.n_layers - 1 for p in curve[1:])
    assert fit["n_prompts"] == 5 and fit["command"] == "test"
    # Independent: HF hidden states, HF norm + lm_head, the logit lens's KL to the last layer.
    kl = torch.zeros(model.n_layers - 1, dtype=torch.float64)
    rows = 0
    for text in HELDOUT:
        ids = model.bridge.to_tokens(text)[:, :MAX_SEQ]
        h = hidden_states(reference, ids)[:, SKIP:]
        final = torch.log_softmax(reference(input_ids=ids).logits[0, SKIP:].float(), -1)
        for layer in range(model.n_layers - 1):
            lp = lens_logprobs(reference, h[layer])
            kl[layer] += (final.exp() * (final - lp)).sum().double()
        rows += h.shape[1]
    expected = (kl / rows).tolist()
    assert fit["logit_lens_heldout_kl"] == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert fit["heldout"]["n_rows"] == rows


def test_bad_input_is_refused_before_fitting(llama, tmp_path):
    model, _, _ = llama
    kwargs = dict(out_dir=tmp_path / "x", corpus={"name": "c"}, show_progress=False)
    with pytest.raises(ValueError, match="slice_size"):
        fit_jacobian(model, PROMPTS, heldout=HELDOUT, slice_size=0, **kwargs)
    with pytest.raises(ValueError, match="heldout shares"):
        fit_jacobian(model, PROMPTS, heldout=PROMPTS[:1], slice_size=2, **kwargs)
    with pytest.raises(ValueError, match="max_seq_len"):
        fit_jacobian(model, PROMPTS, heldout=HELDOUT, slice_size=2, max_seq_len=3, **kwargs)
    assert not (tmp_path / "x").exists()
