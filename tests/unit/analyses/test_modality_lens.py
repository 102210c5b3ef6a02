"""ModalityLens through semantic_hub_scan equals a hand-computed lens at the media positions."""

from __future__ import annotations

import pytest
import torch

from hublens.adapters.base import ModalityAdapter, MultimodalModel
from hublens.adapters.projector import MLPProjector, ProjectorConfig
from hublens.analyses.modality_lens import ModalityLens, word_variant_ids
from hublens.data import ParallelData
from hublens.hooks import attached_hooks
from tests.unit.adapters.test_adapter_base import RandomEncoder, _prepare


@pytest.fixture(scope="module")
def mm_and_reference():
    import hublens
    from tests.conftest import build_tiny

    hf, reference, tok = build_tiny("llama")
    lm = hublens.load_model(hf, tok)
    torch.manual_seed(5)
    projector = MLPProjector(ProjectorConfig(d_in=12, d_out=lm.d_model, hidden=16, window=1))
    adapter = ModalityAdapter("image", RandomEncoder().eval(), projector, prepare=_prepare)
    return MultimodalModel(lm, {"image": adapter}), reference


def test_modality_lens_equals_hand_computed_lens(mm_and_reference):
    from hublens import semantic_hub_scan

    mm, reference = mm_and_reference
    labels = ["cat", "mat", "cat", "flower"]
    records = []
    for i, label in enumerate(labels):
        marker = mm.add_media("image", torch.randn(3, 12) * 2, key=f"ml-{i}")
        records.append({"id": str(i), "image": marker, "caption": label, "meta": {"label": label}})
    data = ParallelData.from_records(records)
    analysis = ModalityLens(media="image", baseline_word="sleeps", seed=3)
    result = semantic_hub_scan(mm, data, analyses=[analysis], batch_size=3, progress=False)
    assert attached_hooks(mm) == []
    others = analysis._others
    # by hand: plain transformers with the same rows as inputs_embeds, final norm + lm_head
    hit = torch.zeros(len(labels), mm.n_layers)
    base = torch.zeros(len(labels), mm.n_layers)
    p_label = torch.zeros(len(labels), mm.n_layers)
    p_other = torch.zeros(len(labels), mm.n_layers)
    for i, record in enumerate(records):
        batch = mm.tokenize([record["image"]])
        pos = batch.positions(0)
        embeds = reference.model.embed_tokens(batch.ids).clone()
        embeds[0, pos] = mm.embed_media("image", f"ml-{i}")
        with torch.no_grad():
            out = reference(inputs_embeds=embeds, output_hidden_states=True)
            for layer in range(mm.n_layers):
                h = out.hidden_states[layer + 1][0, pos]
                if layer < mm.n_layers - 1:  # the last entry already has the final norm
                    h = reference.model.norm(h)
                probs = reference.lm_head(h).softmax(-1)
                top = probs.argmax(-1)
                hit[i, layer] = (
                    torch.isin(top, torch.tensor(sorted(word_variant_ids(mm, labels[i]))))
                    .float()
                    .mean()
                )
                base[i, layer] = (
                    torch.isin(top, torch.tensor(sorted(word_variant_ids(mm, "sleeps"))))
                    .float()
                    .mean()
                )
                p_label[i, layer] = probs[:, mm.word_token_ids(labels[i])[0]].mean()
                p_other[i, layer] = probs[:, mm.word_token_ids(others[i])[0]].mean()
    table = result.table()
    for metric, expected in [
        ("top1_label", hit),
        ("top1_baseline", base),
        ("p_label", p_label),
        ("p_other_label", p_other),
    ]:
        got = table[table.metric == metric].sort_values("layer")["mean"].to_numpy()
        assert got == pytest.approx(expected.mean(0).numpy(), abs=1e-5), metric
    assert all(o != lab for o, lab in zip(others, labels, strict=True))


def test_modality_lens_bad_data(mm_and_reference):
    mm, _ = mm_and_reference
    data = ParallelData.from_records(
        [
            {"image": "no marker", "caption": "cat", "meta": {"label": "cat"}},
            {"image": "none here", "caption": "mat", "meta": {"label": "mat"}},
        ]
    )
    with pytest.raises(ValueError, match="holds no media marker"):
        ModalityLens(media="image").queries(mm, data)
    with pytest.raises(ValueError, match="not a type"):
        ModalityLens(media="audio").queries(mm, data)
    with pytest.raises(ValueError, match="label_key='colour'"):
        ModalityLens(media="image", label_key="colour").queries(mm, data)
