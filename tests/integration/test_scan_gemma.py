"""semantic_hub_scan on the real Gemma-3-270M: paper effects, batch-size invariance, no leaks."""

from __future__ import annotations

import pytest

from hublens import semantic_hub_scan
from hublens.analyses import Similarity
from hublens.data import ParallelData
from hublens.hooks import attached_hooks

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sentences():
    return ParallelData.load("multilingual-sentences").select(range(24))


def test_adjusted_similarity_is_positive_in_middle_layers_and_batch_invariant(gemma, sentences):
    runs = [
        semantic_hub_scan(
            gemma, sentences, analyses=[Similarity(pairs=[("en", "zh")])], batch_size=b,
            progress=False,
        )
        for b in (1, 7)
    ]
    for a, b in zip(runs[0].rows, runs[1].rows, strict=True):
        assert (a.analysis, a.layer, a.metric, a.group) == (b.analysis, b.layer, b.metric, b.group)
        assert abs(a.mean - b.mean) < 1e-4
    adjusted = {r.layer: r for r in runs[0].select("similarity", "adjusted_cosine")}
    # PAPER.md: baseline-adjusted similarity rises, CI clear of 0 in the middle layers.
    assert adjusted[12].ci_low > 0
    assert adjusted[12].mean > adjusted[2].mean
    assert attached_hooks(gemma) == []


def test_scan_is_deterministic_and_reports_provenance(gemma, sentences):
    data = sentences.select(range(6))
    first = semantic_hub_scan(gemma, data, layers=[3, 12], progress=False)
    second = semantic_hub_scan(gemma, data, layers=[3, 12], progress=False)
    assert [r.mean for r in first.rows] == [r.mean for r in second.rows]
    prov = first.provenance
    assert prov["data"]["hash"] == data.content_hash()
    assert prov["model"]["name"] == "gemma-3-270m" and prov["layers"] == [3, 12]
    assert {r.layer for r in first.rows} == {3, 12}
