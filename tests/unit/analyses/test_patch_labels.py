"""PatchLabels on tiny MultimodalModels: a perfect case, hand-counted shares, the shuffled
baseline, caption-noun probabilities against plain transformers, and bad input."""

from __future__ import annotations

import random
import zlib

import numpy as np
import pytest
import torch
from torch import nn

from hublens.adapters.base import ModalityAdapter, MultimodalModel
from hublens.analyses.patch_labels import METRICS, PatchLabels
from hublens.data import ParallelData
from hublens.hooks import attached_hooks
from hublens.scan import semantic_hub_scan
from tests.helpers.lens_reference import lens_logprobs, rows_by_key

#: Single-token words of the tiny tokenizer (" red" and " purple" are not single tokens).
WORDS = ("blue", "green", "black", "white", "circle", "square")
EXTRA = ("red blue green white circle square black",) * 6
N_POS = 9


def _prepare(x):
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"x must be (n, d_model), got {getattr(x, 'shape', type(x))}")
    return x[None]


def _multimodal(lm):
    adapter = ModalityAdapter("image", nn.Identity(), nn.Identity(), prepare=_prepare)
    return MultimodalModel(lm, {"image": adapter})


@pytest.fixture(scope="module")
def perfect():
    """Blocks write nothing (o_proj, down_proj zero): every resid_post is the injected row.

    The unembedding row of ``" WORDS[k]"`` is ``3 e_k``, so a row ``2 e_k`` reads as
    ``WORDS[k]`` at every layer, with or without the final norm: top-1 by construction.
    """
    import hublens
    from tests.conftest import build_tiny

    hf, reference, tok = build_tiny("llama", extra_corpus=EXTRA)
    with torch.no_grad():
        for m in (hf, reference):
            for layer in m.model.layers:
                layer.self_attn.o_proj.weight.zero_()
                layer.mlp.down_proj.weight.zero_()
            for k, w in enumerate(WORDS):
                (t,) = tok.encode(" " + w, add_special_tokens=False)
                m.lm_head.weight[t] = 0.0
                m.lm_head.weight[t, k] = 3.0
    mm = _multimodal(hublens.load_model(hf, tok))
    yield mm, reference
    assert attached_hooks(mm) == []


@pytest.fixture(scope="module")
def plain():
    """A tiny random Llama (blocks intact) with the same tokenizer, and its HF copy."""
    import hublens
    from tests.conftest import build_tiny

    hf, reference, tok = build_tiny("llama", seed=1, extra_corpus=EXTRA)
    mm = _multimodal(hublens.load_model(hf, tok))
    yield mm, reference
    assert attached_hooks(mm) == []


def _rows_for(words_at, d, seed):
    """(9, d) rows: position p reads as words_at[p] (an index into WORDS)."""
    g = torch.Generator().manual_seed(seed)
    x = 0.01 * torch.randn(N_POS, d, generator=g)
    for p, k in enumerate(words_at):
        x[p, k] += 2.0
    return x


NOUN_SETS = (["blue", "green"], ["circle", "square"])


def _data(mm, items, name, nouns_of=None):
    """items: (key, words_at, labels, noun set index); nouns_of overrides item 0's nouns."""
    records = []
    for key, words_at, labels, nouns in items:
        if f"{key}" in mm.media["image"]:
            marker = f"<image:{key}>"
        else:
            marker = mm.add_media(
                "image", _rows_for(words_at, mm.d_model, zlib.crc32(key.encode()) % 1000), key=key
            )
        records.append({
            "id": key, "image": marker, "caption": " ".join(NOUN_SETS[nouns]),
            "meta": {"patch_labels": labels,
                     "nouns": nouns_of if nouns_of and not records else NOUN_SETS[nouns],
                     "kind": "two-colour" if nouns == 0 else "shape"},
        })  # fmt: skip
    return ParallelData.from_records(records, name=name)


def _perfect_items(n, prefix):
    rng = random.Random(0)
    items = []
    for i in range(n):
        a, b = rng.sample(range(len(WORDS)), 2)
        words_at = [a] * 3 + [rng.randrange(len(WORDS))] * 3 + [b] * 3
        labels = [[WORDS[a]]] * 3 + [None] * 3 + [[WORDS[b]]] * 3
        items.append((f"{prefix}{i}", words_at, labels, i % 2))
    return items


def _scan(mm, data, **kw):
    analysis = PatchLabels(**kw)
    return semantic_hub_scan(mm, data, analyses=[analysis], progress=False), analysis


@pytest.mark.parametrize("method", ["hublens", "semantic-hub"])
def test_perfect_case_scores_one_and_the_baseline_is_the_exact_expectation(perfect, method):
    mm, _ = perfect
    items = _perfect_items(6, f"perfect-{method}-")
    result, _ = _scan(mm, _data(mm, items, "perfect"), method=method, n_permutations=500)
    rows = rows_by_key(result, "patch_labels")
    layers = sorted({k[2] for k in rows})
    assert layers == list(range(mm.n_layers))
    for layer in layers:
        assert rows[("top1_region_label", "all", layer)].mean == 1.0
        assert rows[("top1_region_label", "all", layer)].n == 6
        # by hand: 3 positions of each of 2 labels; a random pairing matches with prob 1/2
        # (the exact expectation of a uniform permutation: sum_ij match_ij / n^2 = 18/36)
        shuffled = rows[("top1_shuffled_label", "all", layer)].mean
        assert abs(shuffled - 0.5) < 0.03
        diff = rows[("top1_label_minus_shuffled", "all", layer)]
        assert diff.ci_low > 0.4
    assert {k[1] for k in rows} == {"all", "two-colour", "shape"}
    assert {k[0] for k in rows} == set(METRICS)


def test_hand_counted_share_and_baseline_with_errors(perfect):
    mm, _ = perfect
    # top-1 words per position (by construction) and labels with two deliberate errors
    words_at = [0, 0, 1, 2, 2, 2, 4, 4, 5]
    labels = [["blue"], ["blue"], ["blue"], None, ["black"], ["black"], ["circle", "square"],
              ["green"], ["square"]]  # fmt: skip
    items = [("hand-0", words_at, labels, 0), ("hand-1", words_at, labels, 1)]
    result, _ = _scan(mm, _data(mm, items, "hand"), n_permutations=4000)
    rows = rows_by_key(result, "patch_labels")
    keep = [p for p, lab in enumerate(labels) if lab]
    tops = [WORDS[words_at[p]] for p in keep]
    match = np.array([[tops[i] in labels[j] for j in keep] for i in range(len(keep))], float)
    hand = float(np.mean(np.diag(match)))  # 6/8: position 2 (green read as blue) and 7 wrong
    assert hand == 6 / 8
    exact = float(match.mean())  # expectation over uniform permutations
    for layer in range(mm.n_layers):
        assert rows[("top1_region_label", "all", layer)].mean == pytest.approx(hand)
        assert rows[("top1_shuffled_label", "all", layer)].mean == pytest.approx(exact, abs=0.015)


def test_shuffled_labels_score_near_the_shuffled_baseline(perfect):
    mm, _ = perfect
    rng = random.Random(7)
    items = []
    for key, words_at, labels, nouns in _perfect_items(40, "shuf-"):
        labelled = [lab for lab in labels if lab]
        rng.shuffle(labelled)
        it = iter(labelled)
        items.append((key, words_at, [next(it) if lab else None for lab in labels], nouns))
    result, _ = _scan(mm, _data(mm, items, "shuffled"), n_permutations=200)
    rows = rows_by_key(result, "patch_labels")
    for layer in range(mm.n_layers):
        score = rows[("top1_region_label", "all", layer)].mean
        base = rows[("top1_shuffled_label", "all", layer)].mean
        diff = rows[("top1_label_minus_shuffled", "all", layer)]
        assert abs(score - base) < 0.08
        assert diff.ci_low < 0 < diff.ci_high
        assert score < 0.75  # far from the perfect 1.0


def _single_token_variants(tok, word):
    out = set()
    for v in (word, " " + word, word.capitalize(), " " + word.capitalize()):
        ids = tok.encode(v, add_special_tokens=False)
        if len(ids) == 1:
            out.add(ids[0])
    return out


def _hf_positions_logprobs(reference, mm, text, *, final_norm=True):
    """(layer, image positions, vocab) lens log-probs by plain transformers + forward hooks."""
    batch = mm.tokenize([text])
    (span,) = batch.spans[0]
    (rows,) = batch.media[0]
    captured = []
    handles = [
        layer.register_forward_hook(
            lambda m, a, o: captured.append((o[0] if isinstance(o, tuple) else o).clone())
        )
        for layer in reference.model.layers
    ]
    try:
        with torch.no_grad():
            embeds = reference.model.embed_tokens(batch.ids).clone()
            embeds[0, span.start : span.stop] = rows
            reference(inputs_embeds=embeds)
    finally:
        for h in handles:
            h.remove()
    h = torch.stack([c[0, span.start : span.stop] for c in captured])
    if final_norm:
        return lens_logprobs(reference, h, final_norm=True)
    # the last layer is the model's output: normed under every lens setting
    raw = lens_logprobs(reference, h[:-1], final_norm=False)
    return torch.cat([raw, lens_logprobs(reference, h[-1:], final_norm=True)])


@pytest.mark.parametrize(("fixture", "lens"), [("perfect", "logit"), ("plain", "logit"),
                                               ("plain", "logit-raw")])  # fmt: skip
def test_caption_noun_probabilities_equal_plain_transformers(request, fixture, lens):
    mm, reference = request.getfixturevalue(fixture)
    items = [(f"noun-{fixture}-{lens}-{i}", w, lab, i % 2) for i, (_, w, lab, _) in
             enumerate(_perfect_items(4, ""))]  # fmt: skip
    data = _data(mm, items, "nouns")
    result, _ = _scan(mm, data, lens=["logit", "logit-raw"])  # both lenses, one forward
    assert {r.lens for r in result.rows} == {"logit", "logit-raw"}
    rows = {(r.metric, r.group, r.layer): r for r in result.rows if r.lens == lens}
    tok = mm.tokenizer
    ids = [[tok.encode(" " + w, add_special_tokens=False)[0] for w in s] for s in NOUN_SETS]
    own, other, top_ok = [], [], []
    for i, text in enumerate(data.column("image")):
        lp = _hf_positions_logprobs(reference, mm, text, final_norm=lens == "logit")
        p = lp.exp()
        own.append(p[..., ids[i % 2]].mean(-1).mean(-1))
        other.append(p[..., ids[1 - i % 2]].mean(-1).mean(-1))  # the only unrelated caption
        labels = items[i][2]
        variants = {w: _single_token_variants(tok, w) for w in WORDS}
        top = lp.argmax(-1)
        keep = [q for q, lab in enumerate(labels) if lab]
        hits = [[int(top[layer, q]) in set().union(*(variants[w] for w in labels[q]))
                 for q in keep] for layer in range(mm.n_layers)]  # fmt: skip
        top_ok.append(torch.tensor(hits, dtype=torch.float64).mean(-1))
    own_m, other_m = torch.stack(own).mean(0), torch.stack(other).mean(0)
    top_m = torch.stack(top_ok).mean(0)
    for layer in range(mm.n_layers):
        assert rows[("p_caption_nouns", "all", layer)].mean == pytest.approx(
            float(own_m[layer]), rel=1e-4, abs=1e-7)  # fmt: skip
        assert rows[("p_other_caption_nouns", "all", layer)].mean == pytest.approx(
            float(other_m[layer]), rel=1e-4, abs=1e-7)  # fmt: skip
        assert rows[("top1_region_label", "all", layer)].mean == pytest.approx(float(top_m[layer]))


def _count_forwards():
    calls = []
    handle = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, out: calls.append(type(module).__name__)
    )
    return calls, handle


def test_bad_input_fails_before_any_forward(perfect, tiny_llama):
    mm, _ = perfect
    base = _perfect_items(2, "bad-")
    cases = [
        ([("bad-0", base[0][1], [[" red"]] + base[0][2][1:], 0)], "bare word"),
        ([("bad-0", base[0][1], [["red"]] + base[0][2][1:], 0)], r"2 tokens \['Ġ', 'red'\]"),
        ([("bad-0", base[0][1], [[3]] + base[0][2][1:], 0)], "bare word"),
        ([("bad-0", base[0][1], base[0][2][:4], 0)], "4 labels but its image has 9 positions"),
        ([("bad-0", base[0][1], [None] * 9, 0)], "no labelled position"),
        ([("bad-0", base[0][1], base[0][2], 0), ("bad-2", base[0][1], base[0][2], 0)],
         "shares a noun"),
    ]  # fmt: skip
    calls, handle = _count_forwards()
    try:
        for items, message in cases:
            data = _data(mm, items, "bad")
            with pytest.raises(ValueError, match=message):
                _scan(mm, data)
        # an image of the wrong size: 5 rows where the labels describe a 9-position grid
        marker = mm.add_media("image", torch.zeros(5, mm.d_model), key="small")
        data = ParallelData.from_records([
            {"id": "s", "image": marker, "caption": "x",
             "meta": {"patch_labels": base[0][2], "nouns": ["blue"]}},
            {"id": "t", "image": marker, "caption": "y",
             "meta": {"patch_labels": base[0][2], "nouns": ["circle"]}},
        ])  # fmt: skip
        with pytest.raises(ValueError, match="wrong size"):
            _scan(mm, data)
        bad_noun = _data(mm, base, "noun", nouns_of=["purple"])
        with pytest.raises(ValueError, match="noun='purple' tokenizes to"):
            _scan(mm, bad_noun)
        with pytest.raises(ValueError, match="needs a MultimodalModel"):
            _scan(tiny_llama[0], _data(mm, base, "text-only"))
        with pytest.raises(ValueError, match="n_permutations"):
            PatchLabels(n_permutations=0)
    finally:
        handle.remove()
    # only the media adapter ran (tokenize encodes the image rows); no language-model module
    assert set(calls) <= {"Identity"}
