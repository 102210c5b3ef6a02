"""A user-built lens (a fixed random affine map per layer) through every lens analysis.

The expected numbers are computed by hand on the plain transformers model: hidden states
(``output_hidden_states`` + a hook on the last block) -> ``h + h A_l^T + b_l`` -> the final norm
-> ``lm_head`` -> log-softmax, never through hublens's lens code.
"""

from __future__ import annotations

import pytest
import torch

from hublens.hooks.lens import Lens
from hublens.hooks.readout import Unembed
from tests.helpers.lens_option_cases import (
    ARITH,
    WORDS,
    ZH_TEXTS,
    build_case,
    model_for,
    run_case,
)
from tests.helpers.lens_reference import first_id, hidden_states, lens_logprobs, token_ids


class AffineLens(Lens):
    """``h + h @ A[l].T + b[l]`` per layer, then the final norm and the unembedding."""

    def __init__(self, model, *, seed: int = 0, scale: float = 0.3, name: str = "affine"):
        super().__init__(Unembed.from_model(model), final_norm=True, n_layers=model.n_layers)
        gen = torch.Generator().manual_seed(seed)
        d, n = model.d_model, model.n_layers
        self.a = torch.randn(n, d, d, generator=gen) * scale / d**0.5
        self.b = torch.randn(n, d, generator=gen) * scale
        self.name = name

    def transform(self, h, layer):
        return h + h @ self.a[layer].T + self.b[layer]


def hand_logprobs(reference, lens: AffineLens, h: torch.Tensor) -> torch.Tensor:
    """(layer, ..., vocab) log-probs of the affine lens on plain-HF rows ``h`` (layer, ..., d)."""
    a, b = lens.a, lens.b
    shape = (h.shape[0],) + (1,) * (h.ndim - 2) + (h.shape[-1],)
    moved = h + torch.einsum("l...d,led->l...e", h, a) + b.reshape(shape)
    return lens_logprobs(reference, moved, final_norm=True)


def _mean(rows, metric, group, lens):
    picked = sorted((r for r in rows if r[2] == metric and r[3] == group and r[8] == lens),
                    key=lambda r: r[1])  # fmt: skip
    return torch.tensor([r[4] for r in picked], dtype=torch.float64)


def test_translation_lens_through_an_affine_lens_equals_hand_computation():
    model, reference = model_for("probe")
    lens = AffineLens(model, seed=1)
    rows = run_case("translation", lens=["logit", lens])
    tok = model.tokenizer
    target, dominant = [], []
    for i, w in enumerate(WORDS):
        demo = WORDS[(i + 1) % 4]
        prompt = (f'Français: "{demo["fr"]}" - 中文: "{demo["zh"]}"\n'
                  f'Français: "{w["fr"]}" - 中文: "')  # fmt: skip
        h = hidden_states(reference, torch.tensor([token_ids(model, prompt)]))[:, -1]
        lp = hand_logprobs(reference, lens, h)  # (layer, vocab)
        target.append(lp[:, first_id(tok, w["zh"])])
        dominant.append(lp[:, first_id(tok, w["en"])])
    t, d = torch.stack(target).double(), torch.stack(dominant).double()
    n = {r[7] for r in rows if r[8] == "affine"}
    assert n == {4}, "every word pair of the tiny set is readable"
    group = "fr->zh"
    assert torch.allclose(_mean(rows, "logp_target", group, "affine"), t.mean(0), atol=1e-4)
    assert torch.allclose(_mean(rows, "logp_dominant", group, "affine"), d.mean(0), atol=1e-4)
    p = _mean(rows, "p_target", group, "affine")
    assert torch.allclose(p, t.exp().mean(0), atol=1e-6)
    logit = _mean(rows, "logp_target", group, "logit")  # the same scan's other lens differs
    assert (logit - _mean(rows, "logp_target", group, "affine")).abs().max() > 0.05


def test_arithmetic_lens_through_an_affine_lens_equals_hand_computation():
    model, reference = model_for("probe")
    lens = AffineLens(model, seed=2)
    rows = run_case("arithmetic", lens=lens)
    assert {r[8] for r in rows} == {"affine"}
    tok = model.tokenizer
    words = {2: "two", 3: "three", 5: "five"}
    num = []
    for r in ARITH:
        h = hidden_states(reference, torch.tensor([token_ids(model, r["meta"]["lens_prompt"])]))
        lp = hand_logprobs(reference, lens, h[:, -1])
        answer = r["meta"]["lens_answer"]
        num.append(lp[:, first_id(tok, str(answer))])
        assert words[answer]
    expected = torch.stack(num).double().mean(0)
    assert torch.allclose(_mean(rows, "logp_numeral", "all", "affine"), expected, atol=1e-4)


def test_language_probability_through_an_affine_lens_equals_hand_computation():
    model, reference = model_for("probe")
    lens = AffineLens(model, seed=3)
    analysis, data = build_case("language", model, lens=[lens])
    from hublens import semantic_hub_scan

    result = semantic_hub_scan(model, data, analyses=[analysis], batch_size=2, progress=False,
                               check=False)  # fmt: skip
    matrix = analysis.token_language.float()
    skip = 1 if model.prepend_bos else 0
    for group in ("en", "zh"):
        per_text = []
        for record in data.items:
            h = hidden_states(reference, torch.tensor([token_ids(model, record[group])]))[:, skip:]
            q = hand_logprobs(reference, lens, h).exp() @ matrix  # (layer, pos, K)
            per_text.append((q / q.sum(-1, keepdim=True)).mean(1))  # renormalised, per text
        expected = torch.stack(per_text).double().mean(0)  # (layer, K)
        for k, lang in enumerate(("en", "zh", "fr")):
            got = torch.tensor([r.mean for r in sorted(
                (r for r in result.rows if r.metric == f"p_{lang}" and r.group == group),
                key=lambda r: r.layer)], dtype=torch.float64)  # fmt: skip
            assert torch.allclose(got, expected[:, k], atol=1e-5), (group, lang)
    assert {r.lens for r in result.rows} == {"affine"}
    record = result.options["language_probability"]["lenses"]["affine"]
    assert record["kind"] == "custom" and record["class"].endswith("AffineLens")


def _scan(model, case, **options):
    from hublens import semantic_hub_scan

    analysis, data = build_case(case, model, **options)
    result = semantic_hub_scan(model, data, analyses=[analysis], batch_size=3, progress=False,
                               check=False)  # fmt: skip
    return analysis, data, result


def _line(result, metric, lens):
    rows = sorted((r for r in result.rows if r.metric == metric and r.lens == lens),
                  key=lambda r: r.layer)  # fmt: skip
    return torch.tensor([r.mean for r in rows], dtype=torch.float64)


@pytest.mark.parametrize("case", ["running_text", "running_text_paper"])
def test_running_text_through_an_affine_lens_equals_hand_computation(case):
    model, reference = model_for("char")
    lens = AffineLens(model, seed=4)
    analysis, data, result = _scan(model, case, lens=[lens, "logit"])
    bos = analysis.bos != "none" and model.prepend_bos
    zh, en = [], []
    for text, words in zip([q for q in ZH_TEXTS], analysis._targets, strict=False):
        ids = model.tokenizer.encode(text, add_special_tokens=False)
        ids = [model.tokenizer.bos_token_id, *ids] if bos else ids
        lp = hand_logprobs(reference, lens, hidden_states(reference, torch.tensor([ids])))
        for w in words:  # which words are kept is tested elsewhere; the numbers are by hand
            zh.append(lp[:, w.position, w.zh_token])
            en.append(lp[:, w.position, list(w.en_tokens)].max(-1).values)
    assert zh and {r.n for r in result.rows if r.lens == "affine"} == {len(zh)}
    assert torch.allclose(_line(result, "logp_zh", "affine"), torch.stack(zh).double().mean(0),
                          atol=1e-4)  # fmt: skip
    assert torch.allclose(_line(result, "logp_en_max", "affine"),
                          torch.stack(en).double().mean(0), atol=1e-4)  # fmt: skip


def test_modality_lens_through_an_affine_lens_equals_hand_computation():
    mm, reference = model_for("multimodal")
    lens = AffineLens(mm, seed=5)
    analysis, data, result = _scan(mm, "modality", lens=["logit", lens])
    p_label, p_other = [], []
    for i, item in enumerate(data.items):
        batch = mm.tokenize([item["image"]])
        pos = batch.positions(0)
        embeds = reference.model.embed_tokens(batch.ids).clone()
        key = item["image"].split(":", 1)[1].rstrip(">")
        embeds[0, pos] = mm.embed_media("image", key)
        captured: dict[str, torch.Tensor] = {}

        def keep(module, args, out, captured=captured):
            captured["last"] = out[0] if isinstance(out, tuple) else out

        handle = reference.model.layers[-1].register_forward_hook(keep)
        try:
            with torch.no_grad():
                hs = reference(inputs_embeds=embeds, output_hidden_states=True).hidden_states
        finally:
            handle.remove()
        h = torch.stack([*(hs[k + 1][0] for k in range(mm.n_layers - 1)), captured["last"][0]])
        probs = hand_logprobs(reference, lens, h[:, pos].float()).exp()  # (layer, pos, vocab)
        p_label.append(probs[..., mm.word_token_ids(analysis._labels[i])[0]].mean(-1))
        p_other.append(probs[..., mm.word_token_ids(analysis._others[i])[0]].mean(-1))
    expected = torch.stack(p_label).double().mean(0)
    assert torch.allclose(_line(result, "p_label", "affine"), expected, atol=1e-5)
    expected = torch.stack(p_other).double().mean(0)
    assert torch.allclose(_line(result, "p_other_label", "affine"), expected, atol=1e-5)
    assert {r.lens for r in result.rows} == {"logit", "affine"}


@pytest.mark.parametrize("case", ["translation", "language", "running_text", "modality"])
def test_statistics_are_keyed_by_lens(case):
    model, _ = model_for(dict(running_text="char", modality="multimodal").get(case, "probe"))
    analysis, _, result = _scan(model, case, lens=["logit", AffineLens(model, name="mine")])
    keys = [k for stat in analysis.statistics() for k in stat]
    assert {k if isinstance(k, str) else k[0] for k in keys} == {"logit", "mine"}
    assert analysis.options["lens"] == ["logit", "mine"]
    assert list(analysis.options["lenses"]) == ["logit", "mine"]
    assert result.lenses == ["logit", "mine"]
