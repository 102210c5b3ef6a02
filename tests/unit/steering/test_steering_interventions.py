"""Each intervention's generated texts against the same steering done by hand in transformers.

The examples of a SteeringResult hold the decoded continuations at every strength; these tests
rebuild them from the plain HF model with an ordinary forward (pre-)hook adding the vector by
hand, and also require that steering changed at least one continuation, so a zeroed vector or a
hook that is not attached fails here.
"""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch

from hublens.hooks import attached_hooks
from hublens.steering.interventions import arithmetic as arith
from hublens.steering.interventions import code
from hublens.steering.interventions import sentiment as senti
from tests.helpers.hf_steering import add_post, add_pre, bos_ids, greedy, post_hidden, pre_hidden


def _decode(model, new, **kwargs):
    return model.tokenizer.decode(new[0].tolist(), **kwargs)


def test_arithmetic_texts_equal_hf_steering_by_hand(tiny):
    model, reference, _ = tiny
    layer, strengths, n_items, max_result, steps = 1, [0.0, 8.0], 2, 8, 3
    result = arith.run_arithmetic_intervention(
        model,
        layer=layer,
        strengths=strengths,
        seeds=[0],
        n_items=n_items,
        max_result=max_result,
        max_new_tokens=steps,
        progress=False,
    )
    items = random.Random(0).sample(arith.arithmetic_pool(max_result=max_result), n_items)
    expected, changed = [], 0
    for item in items:
        towards, away = arith.english_pair(item)
        h_t = post_hidden(reference, torch.tensor([bos_ids(model, towards)]), layer)[0, -1]
        h_a = post_hidden(reference, torch.tensor([bos_ids(model, away)]), layer)[0, -1]
        ids = torch.tensor([bos_ids(model, item.prompt)])
        pos = ids.shape[1]
        texts = {}
        for s in strengths:
            rows = (s * (h_t - h_a))[None, None]
            with add_post(reference, layer, rows, [pos - 1], prompt_len=pos):
                texts[s] = _decode(model, greedy(reference, ids, steps))
        changed += texts[8.0] != texts[0.0]
        shown = ", ".join(f"s={s:g}: {texts[s]!r}" for s in strengths)
        expected.append(f"{item.prompt} (true {item.answer}, target {item.answer - 1}) -> {shown}")
    assert changed >= 1, "steering changed no continuation: the test could not see it"
    assert result.examples == expected
    assert attached_hooks(model) == []


def test_code_texts_equal_hf_steering_by_hand(tiny):
    model, reference, _ = tiny
    layer, strengths, steps = 1, [0.0, 1.0], 4
    result = code.run_code_intervention(
        model,
        layer=layer,
        strengths=strengths,
        seeds=[0],
        n_items=2,
        pool_size=20,
        max_new_tokens=steps,
        progress=False,
    )
    items = random.Random(0).sample(list(code.range_calls(20, max_prefix_chars=300)), 2)
    weight = reference.lm_head.weight.detach()
    a = model.tokenizer.encode("start", add_special_tokens=False)[0]
    b = model.tokenizer.encode("end", add_special_tokens=False)[0]
    unit = (weight[a] - weight[b]) / (weight[a] - weight[b]).norm()
    expected, changed = [], 0
    for item in items:
        ids = torch.tensor([bos_ids(model, item.code)])
        pos = ids.shape[1]
        norm = post_hidden(reference, ids, layer)[0, -1].norm()
        texts = {}
        for s in strengths:
            with add_post(reference, layer, (s * norm * unit)[None, None], [pos - 1], pos):
                texts[s] = _decode(model, greedy(reference, ids, steps), skip_special_tokens=True)
        changed += texts[1.0] != texts[0.0]
        shown = " | ".join(f"s={s:g}: {texts[s]!r}" for s in strengths)
        expected.append(
            f"{item.file}: ...{item.code[-60:]!r} (original arg {item.arg!r}) -> {shown}"
        )
    assert changed >= 1, "steering changed no continuation: the test could not see it"
    assert result.examples == expected
    assert attached_hooks(model) == []


def test_sentiment_texts_equal_hf_actadd_by_hand(tiny):
    model, reference, _ = tiny
    layer, strength, steps = 1, 8.0, 4
    # A short prompt: the tiny Gemma's sliding window (8) must reach the steered first positions.
    setup = dataclasses.replace(senti.LANGUAGES["es"], prompts=("Mi gato",))
    # temperature 0 is TransformerLens's greedy sampling: the sampled path, made deterministic.
    result = senti.run_sentiment_intervention(
        model,
        layer=layer,
        languages=["es"],
        strengths=[0, strength],
        seeds=[0],
        n_prompts=1,
        max_new_tokens=steps,
        temperature=0.0,
        setups={"es": setup},
        progress=False,
    )
    prompt = setup.prompts[0]
    ids = torch.tensor([bos_ids(model, prompt)])
    pos = ids.shape[1]
    space = model.tokenizer.encode(" ", add_special_tokens=False)
    pad = space[0] if len(space) == 1 else model.tokenizer.pad_token_id

    def actadd(positive, negative):
        rows = [bos_ids(model, positive), bos_ids(model, negative)]
        width = max(map(len, rows))
        rows = [r + [pad] * (width - len(r)) for r in rows]
        hidden = pre_hidden(reference, torch.tensor(rows), layer)
        return hidden[0] - hidden[1]

    vectors = {"en": actadd(*senti.ENGLISH_PAIR), "es": actadd(*setup.pair)}
    k = max(len(v) for v in vectors.values())
    news = {"unsteered": greedy(reference, ids, steps)}
    for src, vec in vectors.items():
        rows = torch.zeros(1, k, model.d_model)
        rows[0, : len(vec)] = strength * vec
        with add_pre(reference, layer, rows, range(k), prompt_len=pos):
            news[src] = greedy(reference, ids, steps)
    assert any(not torch.equal(news[s], news["unsteered"]) for s in vectors), "no visible steering"
    texts = {src: _decode(model, new, skip_special_tokens=True) for src, new in news.items()}
    expected = [f"[es, unsteered, s=0] {prompt}|{texts['unsteered']}"]
    expected += [f"[es, {src}, s={strength:g}] {prompt}|{texts[src]}" for src in vectors]
    assert result.examples == expected
    # The token ids themselves, through the perplexity of each continuation (unsteered HF model).
    table = result.table()
    for src in vectors:
        with torch.no_grad():
            logits = reference(input_ids=torch.cat([ids, news[src]], dim=1)).logits[0]
        logp = torch.log_softmax(logits.float(), -1)
        nll = -torch.stack([logp[pos - 1 + t, news[src][0, t]] for t in range(steps)]).mean()
        row = table[
            (table.group == f"es/{src}-vector")
            & (table.strength == strength)
            & (table.metric == "perplexity")
        ]
        assert float(row["value"].iloc[0]) == pytest.approx(float(nll.exp()), rel=1e-4), src
    assert attached_hooks(model) == []
