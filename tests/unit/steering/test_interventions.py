"""The three steering interventions on tiny models, their outcome rules, results and report."""

from __future__ import annotations

import math
import random

import pytest
import torch

from hublens.data.builtin.code import stdlib_root
from hublens.hooks import attached_hooks
from hublens.steering.interventions import arithmetic as arith
from hublens.steering.interventions import code
from hublens.steering.interventions import sentiment as senti
from hublens.steering.interventions.lexicon import lexicon_score
from hublens.steering.result import SteeringResult, SteeringRow


def test_arithmetic_answer_parsing_and_outcomes():
    assert arith.parse_answer("2+4") == 2
    assert arith.parse_answer(" 10=") == 10
    assert arith.parse_answer("x1") is None
    assert arith.classify(4, 5) == "correct"
    assert arith.classify(5, 5) == "unchanged"
    assert arith.classify(7, 5) == "other"
    assert arith.classify(None, 5) == "other"
    assert arith.classify(None, None) == "unchanged"
    item = arith.ArithmeticItem(13, 4)
    assert item.prompt == "13=4+" and item.answer == 9
    assert arith.english_pair(item) == (
        "thirteen equals to five plus",
        "thirteen equals to four plus",
    )
    pool = arith.arithmetic_pool(max_result=6)
    # o + t = r with t >= 2, r <= 6: t=2: o=1..4, t=3: 1..3, t=4: 1..2, t=5: 1  -> 10
    assert len(pool) == 10 and all(i.answer >= 2 and i.result <= 6 for i in pool)


def test_code_argument_parsing_and_outcomes():
    assert code.argument_text("0, len(a)):\n") == ("0, len(a)", 2)
    assert code.argument_text("len(a, b)):") == ("len(a, b)", 1)
    assert code.argument_text("f(',', x)) + 1") == ("f(',', x)", 1)
    assert code.argument_text("n") == ("n", 1)
    assert code.argument_text(")") == ("", 0)
    assert code.classify("1, n):", "n):") == "correct"
    assert code.classify("n):\n", "n): ") == "unchanged"
    assert code.classify("m):", "n):") == "other"
    assert code.classify("0, n):", "1, n):") == "other"  # the start was there already


def test_lexicon_scores_by_hand():
    assert lexicon_score("这部电影很好，但结局不好。", "zh").score == 0
    assert lexicon_score("美好的一天", "zh").positive == 1
    assert lexicon_score("Fue muy bueno, pero el final fue malo y triste.", "es").score == -1
    assert lexicon_score("C'était génial, vraiment très bon !", "fr").score == 2
    with pytest.raises(ValueError, match="language='xx'"):
        lexicon_score("x", "xx")


def test_range_calls_are_real_one_argument_calls_in_the_stdlib():
    items = code.range_calls(20, max_prefix_chars=300)
    assert len(items) == 20
    root = stdlib_root()
    for item in items:
        text = (root / item.file).read_bytes().decode("utf-8")
        assert text[item.offset - len(item.code) : item.offset] == item.code
        assert item.code.endswith("range(")
        rest = text[item.offset :]
        assert rest.startswith(item.arg) and rest[len(item.arg) :].lstrip().startswith(")")


def _hf_hidden_last(reference, model, text, layer):
    ids = model.tokenizer.encode(text, add_special_tokens=False)
    ids = [model.tokenizer.bos_token_id, *ids] if model.prepend_bos else ids
    with torch.no_grad():
        out = reference(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states[layer + 1][0, -1], ids


def _hf_steered_greedy(reference, ids, layer, vector, position, steps):
    prompt_len = len(ids)

    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if hidden.shape[1] < prompt_len:
            return output
        hidden = hidden.clone()
        hidden[:, position] += vector
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = reference.model.layers[layer].register_forward_hook(hook)
    try:
        seq = torch.tensor([ids])
        with torch.no_grad():
            for _ in range(steps):
                nxt = reference(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
                seq = torch.cat([seq, nxt], dim=1)
    finally:
        handle.remove()
    return seq[0, prompt_len:].tolist()


def test_arithmetic_intervention_matches_an_independent_hf_recomputation(tiny):
    model, reference, _ = tiny
    layer, strengths, n_items, max_result = 1, [0.0, 2.0, 8.0], 3, 8
    result = arith.run_arithmetic_intervention(
        model,
        layer=layer,
        strengths=strengths,
        seeds=[0, 1],
        n_items=n_items,
        max_result=max_result,
        progress=False,
    )
    table = result.table()
    assert len(table) == 2 * len(strengths) * len(arith.METRICS)
    for (_seed, s), part in table.groupby(["seed", "strength"]):
        values = dict(zip(part["metric"], part["value"], strict=False))
        assert math.isclose(values["correct"] + values["unchanged"] + values["other"], 1.0)
        if s == 0:
            assert values["unchanged"] == 1.0
    # Independent: plain transformers, a plain PyTorch hook, the same items for seed 0.
    items = random.Random(0).sample(arith.arithmetic_pool(max_result=max_result), n_items)
    for s in strengths:
        counts = {"correct": 0, "unchanged": 0, "other": 0}
        for item in items:
            towards, away = arith.english_pair(item)
            h_t, _ = _hf_hidden_last(reference, model, towards, layer)
            h_a, _ = _hf_hidden_last(reference, model, away, layer)
            _, ids = _hf_hidden_last(reference, model, item.prompt, layer)
            answers = []
            for scale in (0.0, s):
                new = _hf_steered_greedy(reference, ids, layer, scale * (h_t - h_a), -1, 3)
                answers.append(arith.parse_answer(model.tokenizer.decode(new)))
            counts[arith.classify(answers[1], answers[0])] += 1
        got = table[(table.seed == 0) & (table.strength == s)].set_index("metric")["value"]
        for metric, count in counts.items():
            assert got[metric] == pytest.approx(count / n_items), (s, metric)
    assert attached_hooks(model) == []


def test_code_intervention_tiny(tiny_llama):
    model, _ = tiny_llama
    result = code.run_code_intervention(
        model,
        layer=1,
        strengths=[0, 0.5],
        seeds=[0],
        n_items=2,
        pool_size=20,
        max_new_tokens=4,
        progress=False,
    )
    summary = result.summary().set_index(["strength", "metric"])["mean"]
    assert summary[(0.0, "unchanged")] == 1.0 and summary[(0.0, "correct")] == 0.0
    total = sum(summary[(0.5, m)] for m in ("correct", "unchanged", "other"))
    assert math.isclose(total, 1.0)
    tokens = result.options["tokens"]
    assert len(tokens) == 2 and tokens[0] != tokens[1]
    assert attached_hooks(model) == []


def test_sentiment_scores_match_plain_transformers(tiny):
    model, reference, _ = tiny
    setup = senti.LANGUAGES["es"]
    judge = senti._judge(model, setup)
    prompt = model.tokenize(setup.prompts[0]).ids[0]
    new = torch.tensor([[5, 17, 42], [99, 3, 250]])
    layer = 1
    scores = senti.score_continuations(model, prompt, new, judge, layer=layer)
    pos = len(prompt)
    for r in range(2):
        full = torch.cat([prompt, new[r], judge.suffix_ids])[None]
        with torch.no_grad():
            out = reference(input_ids=full, output_hidden_states=True)
        logp = torch.log_softmax(out.logits[0].float(), -1)
        nll = -torch.stack([logp[pos - 1 + t, new[r, t]] for t in range(3)]).mean()
        assert scores["perplexity"][r] == pytest.approx(float(nll.exp()), rel=1e-4)
        odds = logp[-1, judge.positive] - logp[-1, judge.negative]
        assert scores["log_odds"][r] == pytest.approx(float(odds), abs=1e-3)
        hidden = out.hidden_states[layer + 1][0]
        start = 1 if model.prepend_bos else 0
        cos = torch.cosine_similarity(hidden[start:pos].mean(0), hidden[pos : pos + 3].mean(0), 0)
        assert scores["relevance"][r] == pytest.approx(float(cos), abs=1e-4)


def test_sentiment_intervention_tiny(tiny_llama):
    model, _ = tiny_llama
    result = senti.run_sentiment_intervention(
        model,
        layer=1,
        languages=["es"],
        strengths=[0, 4],
        seeds=[0, 1],
        n_prompts=1,
        max_new_tokens=4,
        progress=False,
    )
    table = result.table()
    assert set(table["group"]) == {"es/en-vector", "es/es-vector"}
    assert len(table) == 2 * 2 * 2 * len(senti.METRICS)
    zero = table[table.strength == 0].pivot_table(
        index=["seed", "metric"], columns="group", values="value"
    )
    assert (zero["es/en-vector"] == zero["es/es-vector"]).all()  # one shared unsteered run
    assert table["value"].map(math.isfinite).all()
    again = senti.run_sentiment_intervention(
        model,
        layer=1,
        languages=["es"],
        strengths=[0, 4],
        seeds=[0, 1],
        n_prompts=1,
        max_new_tokens=4,
        progress=False,
    )
    assert again.table().equals(table)  # seeded: reproducible
    with pytest.raises(ValueError, match="languages contains 'xx'"):
        senti.run_sentiment_intervention(model, languages=["xx"], progress=False)
    with pytest.raises(TypeError, match="strengths contains"):
        senti.run_sentiment_intervention(model, strengths=[0, "4"], progress=False)
    with pytest.raises(ValueError, match="out of range"):
        arith.run_arithmetic_intervention(model, layer=7, progress=False)
    with pytest.raises(ValueError, match="n_items=0"):
        code.run_code_intervention(model, n_items=0, progress=False)
    assert attached_hooks(model) == []


def _result():
    rows = []
    for seed, values in ((0, (0.2, 0.5)), (1, (0.4, 0.9))):
        for s, v in zip((0.0, 1.0), values, strict=False):
            rows.append(SteeringRow("demo", "g<script>", s, seed, "correct", v, 10))
    return SteeringResult(
        "demo",
        rows,
        provenance={"model": {"name": "</script><b>x"}},
        options={"note": "<img src=x onerror=alert(1)>"},
        examples=["<script>alert('x')</script>"],
        metrics=["correct"],
    )


def test_steering_result_summary_json_and_html(tmp_path):
    result = _result()
    summary = result.summary().set_index("strength")
    assert summary.loc[1.0, "mean"] == pytest.approx(0.7)
    assert summary.loc[1.0, "std"] == pytest.approx(math.sqrt(((0.5 - 0.7) ** 2 + 0.2**2) / 1))
    assert summary.loc[0.0, "n"] == 20
    back = SteeringResult.from_json(result.to_json())
    assert back.table().equals(result.table()) and back.options == result.options
    assert "0.700 ± 0.283" in result.to_markdown()
    path = result.save(tmp_path)
    page = path.read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>x" not in page
    assert "&lt;script&gt;alert" in page
    assert (tmp_path / "demo.json").is_file() and (tmp_path / "demo.csv").is_file()
    fig = result.figure()
    assert [t.meta["group"] for t in fig.data] == ["g<script>"]
    assert list(fig.data[0].y) == pytest.approx([0.3, 0.7])


def test_cli_rejects_bad_strengths_before_loading(capsys):
    from hublens.cli import main

    with pytest.raises(SystemExit, match="'a' is not a number"):
        main(["steer", "arithmetic", "--model", "no-such-model", "--strengths", "0,a"])
    with pytest.raises(SystemExit, match="comma-separated ints"):
        main(["steer", "code", "--model", "no-such-model", "--seeds", "0,x"])


def test_steering_sections_go_into_a_scan_report_once(tmp_path):
    from hublens.analyses.base import Row
    from hublens.results import ScanResult
    from hublens.steering.report import add_to_report

    scan = ScanResult([Row("similarity", 0, "cosine", "", 0.5, 0.4, 0.6, 3)], {"model": "m"})
    report = scan.save(tmp_path)
    add_to_report([_result()], report)
    add_to_report([_result()], report)  # replaces, does not duplicate
    page = report.read_text(encoding="utf-8")
    assert page.count('id="steering-0"') == 1 and page.count("Steering: demo") == 1
    assert page.index("Steering: demo") < page.index("<footer>")
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page
    assert page.count("similarity") >= 1  # the scan's own section is kept
    plain = tmp_path / "plain.html"
    plain.write_text("<html>no report</html>", encoding="utf-8")
    with pytest.raises(ValueError, match="not a hublens scan report"):
        add_to_report([_result()], plain)
