"""The token x layer lens grid against a hand computation with plain transformers."""

from __future__ import annotations

import math

import pytest
import torch

from hublens.hooks import LogitLens
from hublens.views import LensGrid, TokenClass, grid_html, lens_grid, script_marks
from hublens.views.lens_grid import default_grid_layers

TEXT = "猫在温暖的垫子上睡觉。 3+2=5"


def _hand_grid(model, reference, text, *, final_norm):
    """Top-1 ids and probs per (layer, position) from HF hidden states + norm + lm_head."""
    batch = model.tokenize(text)
    with torch.no_grad():
        out = reference(input_ids=batch.ids, output_hidden_states=True)
    inner = reference.model
    n = model.n_layers
    ids, probs = [], []
    for layer in range(n):
        h = out.hidden_states[layer + 1][0].float()
        if layer == n - 1:
            x = h  # transformers' last hidden state already went through the final norm
        elif final_norm:
            x = inner.norm(h)
        else:
            x = h
        logits = x @ reference.lm_head.weight.float().T
        cap = getattr(reference.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        p = torch.softmax(logits, -1)
        ids.append(p.argmax(-1).tolist())
        probs.append(p.max(-1).values.tolist())
    return ids, probs


@pytest.mark.parametrize("final_norm", [True, False])
def test_cells_equal_hand_computation(tiny, final_norm):
    model, reference, _ = tiny
    lens = LogitLens.from_model(model, final_norm=final_norm)
    grid = lens_grid(model, TEXT, lens=lens, include_bos=True)
    ids, probs = _hand_grid(model, reference, TEXT, final_norm=final_norm)
    assert grid.layers == list(range(model.n_layers))
    assert grid.top_ids == ids
    for got_row, want_row in zip(grid.probs, probs, strict=True):
        assert got_row == pytest.approx(want_row, abs=1e-5)
    assert grid.top_tokens[1][2] == model.tokenizer.decode([ids[1][2]])
    # the top-k log-probs are sorted and start at the top-1 probability
    cell = grid.topk_logprobs[0][0]
    assert len(cell) == 5 and cell == sorted(cell, reverse=True)
    assert math.exp(cell[0]) == pytest.approx(grid.probs[0][0], abs=1e-4)


def test_bos_dropped_by_default_and_layers_chosen(tiny):
    model, reference, _ = tiny
    full = lens_grid(model, TEXT, include_bos=True)
    grid = lens_grid(model, TEXT, layers=[0, 2])
    start = 1 if model.prepend_bos else 0
    assert grid.positions == full.positions[start:]
    assert grid.layers == [0, 2]
    assert grid.top_ids[1] == full.top_ids[2][start:]


def test_marks_follow_the_callers_sets(tiny):
    model, _, _ = tiny
    grid = lens_grid(model, TEXT, layers=[0, 1])
    chosen = grid.top_ids[0][0]
    marked = lens_grid(model, TEXT, layers=[0, 1], marks={"mine": {chosen}})
    expected = [[i == chosen for i in row] for row in grid.top_ids]
    assert marked.marks["mine"] == expected
    assert marked.mark_share("mine")[0] == sum(expected[0]) / len(expected[0])


def test_token_class_rules(tiny):
    model, _, _ = tiny
    tok = model.tokenizer
    cjk, latin = TokenClass(tok, "cjk"), TokenClass(tok, "latin")
    vocab = tok.get_vocab().values()
    cat = [i for i in vocab if all("\u4e00" <= c <= "\u9fff" for c in tok.decode([i]))]
    the = [i for i in vocab if tok.decode([i]).strip() in ("The", "cat", "flower")]
    short = [i for i in vocab if tok.decode([i]).strip() == "a"]
    assert cat and cat[0] in cjk and cat[0] not in latin
    assert the and the[0] in latin and the[0] not in cjk
    assert short and short[0] not in latin  # one letter is not an English word
    assert "x" not in latin and True not in latin
    assert set(script_marks(model, "zh")) == {"target: zh", "dominant: en"}
    with pytest.raises(ValueError, match="script="):
        TokenClass(tok, "klingon")


def test_bad_inputs_fail_before_forward(tiny):
    model, _, _ = tiny
    with pytest.raises(ValueError, match="text="):
        lens_grid(model, "")
    with pytest.raises(ValueError, match="top_k="):
        lens_grid(model, TEXT, top_k=0)
    with pytest.raises(ValueError, match="layer"):
        lens_grid(model, TEXT, layers=[99])


def test_html_escapes_text_and_tokens(tiny):
    model, _, _ = tiny
    evil = "<script>alert(1)</script> & <b>x</b>"
    grid = lens_grid(model, evil, layers=[0], label="<img src=x onerror=alert(2)>")
    page = grid_html(grid, "g")
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>x</b>" not in page


def test_round_trip_and_default_layers():
    grid = LensGrid(
        text="a", tokens=["a"], positions=[0], layers=[0], top_ids=[[1]], top_tokens=[["b"]],
        probs=[[0.5]], topk_tokens=[[["b"]]], topk_logprobs=[[[-0.69]]], marks={"m": [[True]]},
    )  # fmt: skip
    assert LensGrid.from_dict(grid.to_dict()) == grid
    assert default_grid_layers(18) == list(range(18))
    deep = default_grid_layers(30)
    assert deep[-1] == 29 and len(deep) == 15 and deep[1] - deep[0] == 2
