"""Logit-lens probes (experiments 1-4) against a plain-transformers lens computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from hublens import semantic_hub_scan
from hublens.analyses import (
    ArithmeticProbe,
    CodeArgsProbe,
    CodeListProbe,
    SemanticsRoleProbe,
    TranslationLens,
    WordLens,
)
from hublens.data import ParallelData
from hublens.hooks import attached_hooks
from tests.conftest import build_tiny
from tests.helpers.lens_reference import first_id, last_token_logprobs, rows_by_key, token_ids

#: Extra tokenizer training text, so that " and", " or", " not" and the role words are tokens.
EXTRA = (
    "cats and dogs or not, and or not, x = [a, b] and y = [cat, mat] or not",
    "Emma gave Liam the cat . The cat saw Noah . agent theme recipient agent theme recipient",
)


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def tiny(request):
    """Module override of the conftest fixture: the tiny models with the extra vocabulary."""
    import hublens

    hf, reference, tokenizer = build_tiny(request.param, extra_corpus=EXTRA)
    model = hublens.load_model(hf, tokenizer)
    yield model, reference, request.param
    assert attached_hooks(model) == []


WORDS = [
    {"en": "flower", "zh": "花", "fr": "fleur"},
    {"en": "cat", "zh": "猫", "fr": "chat"},
    {"en": "mat", "zh": "垫子", "fr": "tapis"},
    {"en": "warm", "zh": "温暖", "fr": "chaud"},
]


def _check_rows(rows, expected: dict, group: str, n: int, tol: float = 1e-4) -> None:
    """expected: metric -> (items, layer) tensor of per-item values."""
    for metric, values in expected.items():
        mean = values.double().mean(0)
        for layer in range(values.shape[1]):
            row = rows[(metric, group, layer)]
            assert row.n == n
            assert abs(row.mean - float(mean[layer])) < tol, (metric, layer, row.mean, mean[layer])
        if values.shape[0] > 1:  # the CI is a t-interval over items
            sd = values.double().std(0)
            row = rows[(metric, group, 0)]
            if float(sd[0]) > 0:
                assert row.ci_low < row.mean < row.ci_high


@pytest.mark.parametrize("batch_size", [1, 3])
def test_translation_lens_equals_hand_lens(tiny, batch_size):
    model, reference, _ = tiny
    data = ParallelData.from_records(WORDS, name="w")
    probe = TranslationLens(source="fr", target="zh", dominant="en", few_shot=1)
    result = semantic_hub_scan(model, data, analyses=[probe], batch_size=batch_size, progress=False)
    tok = model.tokenizer
    # The prompt, written by hand: one demonstration from the next item, then the query.
    prompts = [
        f'Français: "{WORDS[(i + 1) % 4]["fr"]}" - 中文: "{WORDS[(i + 1) % 4]["zh"]}"\n'
        f'Français: "{w["fr"]}" - 中文: "'
        for i, w in enumerate(WORDS)
    ]
    target, dominant = [], []
    for prompt, w in zip(prompts, WORDS, strict=True):
        lp = last_token_logprobs(reference, model, prompt)
        target.append(lp[:, first_id(tok, w["zh"])])
        dominant.append(lp[:, first_id(tok, w["en"])])
    t, d = torch.stack(target), torch.stack(dominant)
    rows = rows_by_key(result, "translation_lens")
    _check_rows(
        rows,
        {
            "logp_target": t,
            "logp_dominant": d,
            "p_target": t.exp(),
            "p_dominant": d.exp(),
            "frac_dominant_gt_target": (d > t).double(),
        },
        "fr->zh",
        n=4,
    )
    assert result.examples["translation_lens"][0] == prompts[0]
    assert result.options["translation_lens"]["token_policy"] == "first"
    assert result.options["translation_lens"]["final_norm"] is True
    assert attached_hooks(model) == []


def test_arithmetic_probe_reads_numeral_without_and_word_with_space(tiny):
    model, reference, _ = tiny
    words = {2: "two", 5: "five", 3: "three", 8: "eight"}
    records = [
        {
            "numeral": "3+2",
            "words": "three plus two",
            "id": "a",
            "meta": {"lens_prompt": "5=3+", "lens_answer": 2, "op": "+"},
        },
        {
            "numeral": "2+3",
            "words": "two plus three",
            "id": "b",
            "meta": {"lens_prompt": "5=2+", "lens_answer": 3, "op": "+"},
        },
        {
            "numeral": "4*2",
            "words": "four times two",
            "id": "c",
            "meta": {"lens_prompt": "8=4*", "lens_answer": 2, "op": "*"},
        },
        {
            "numeral": "1*5",
            "words": "one times five",
            "id": "d",
            "meta": {"lens_prompt": "5=1*", "lens_answer": 5, "op": "*"},
        },
    ]
    data = ParallelData.from_records(records, name="arith")
    result = semantic_hub_scan(model, data, analyses=[ArithmeticProbe()], progress=False)
    tok = model.tokenizer
    num, word, op = [], [], []
    for r in records:
        lp = last_token_logprobs(reference, model, r["meta"]["lens_prompt"])
        answer = r["meta"]["lens_answer"]
        num.append(lp[:, first_id(tok, str(answer))])
        word.append(lp[:, first_id(tok, " " + words[answer])])
        op.append(r["meta"]["op"])
    num_t, word_t = torch.stack(num), torch.stack(word)
    rows = rows_by_key(result, "arithmetic_lens")
    for group, keep in (("all", [0, 1, 2, 3]), ("add", [0, 1]), ("mul", [2, 3])):
        _check_rows(
            rows,
            {
                "logp_numeral": num_t[keep],
                "logp_word": word_t[keep],
                "frac_word_gt_numeral": (word_t[keep] > num_t[keep]).double(),
            },
            group,
            n=len(keep),
        )


def test_code_list_probe_targets_and_or_not_and_next_element(tiny):
    model, reference, _ = tiny
    records = [
        {"code": "x = [a,", "next": "b"},
        {"code": "def add(a, b): return [a,", "next": "b"},
        {"code": "y = [cat,", "next": "mat"},
    ]
    data = ParallelData.from_records(records, name="lists")
    result = semantic_hub_scan(model, data, analyses=[CodeListProbe()], progress=False)
    tok = model.tokenizer
    cols: dict[str, list[torch.Tensor]] = {k: [] for k in ("and", "or", "not", "next")}
    for r in records:
        lp = last_token_logprobs(reference, model, r["code"])
        targets = (("and", " and"), ("or", " or"), ("not", " not"), ("next", " " + r["next"]))
        for key, text in targets:
            cols[key].append(lp[:, first_id(tok, text)])
    t = {k: torch.stack(v) for k, v in cols.items()}
    expected = {f"logp_{k}": v for k, v in t.items()}
    expected["frac_and_gt_or"] = (t["and"] > t["or"]).double()
    _check_rows(rows_by_key(result, "code_list_lens"), expected, "all", n=3)
    # No source offsets: the gap is assumed, and that is counted, not hidden.
    assert result.options["code_list_lens"]["gap_guessed"] == 3


def test_code_args_probe_space_after_comma_not_after_paren(tiny):
    model, reference, _ = tiny
    records = [
        {"code": "add(", "param": "a", "arg": "cat"},
        {"code": "add(cat,", "param": "b", "arg": "mat"},
    ]
    data = ParallelData.from_records(records, name="args")
    result = semantic_hub_scan(model, data, analyses=[CodeArgsProbe()], progress=False)
    tok = model.tokenizer
    param, arg = [], []
    for r, space in zip(records, ("", " "), strict=True):
        lp = last_token_logprobs(reference, model, r["code"])
        param.append(lp[:, first_id(tok, space + r["param"])])
        arg.append(lp[:, first_id(tok, space + r["arg"])])
    p, a = torch.stack(param), torch.stack(arg)
    rows = rows_by_key(result, "code_args_lens")
    _check_rows(rows, {"logp_param": p[:1], "logp_arg": a[:1]}, "after_paren", n=1)
    _check_rows(rows, {"logp_param": p[1:], "logp_arg": a[1:]}, "after_comma", n=1)
    _check_rows(
        rows, {"logp_param": p, "logp_arg": a, "frac_param_gt_arg": (p > a).double()}, "all", n=2
    )


def test_semantics_role_probe_reads_before_each_name(tiny):
    model, reference, _ = tiny
    sentence = "Emma gave Liam the cat ."
    records = [
        {
            "sentence": sentence,
            "logical_form": "give . agent ( x _ 1 , Emma ) AND give . recipient ( x _ 1 , Liam )",
            "meta": {
                "name_offsets": {"Emma": 0, "Liam": 10},
                "name_roles": {"Emma": "agent", "Liam": "recipient"},
            },
        },
        {
            "sentence": "The cat saw Noah .",
            "logical_form": "see . agent ( x _ 1 , cat ) AND see . theme ( x _ 1 , Noah )",
            "meta": {"name_offsets": {"Noah": 12}, "name_roles": {"Noah": "theme"}},
        },
    ]
    data = ParallelData.from_records(records, name="sem")
    probe = SemanticsRoleProbe()
    result = semantic_hub_scan(model, data, analyses=[probe], progress=False)
    assert model.convention.space_marker  # byte-level BPE: the space belongs to the next word
    tok = model.tokenizer
    roles = ("agent", "theme", "recipient")
    # Emma starts the sentence (no prefix): skipped and counted. Liam: "Emma gave" + " recipient".
    cases = [("Emma gave", "recipient"), ("The cat saw", "theme")]
    correct, other = [], []
    for prefix, role in cases:
        lp = last_token_logprobs(reference, model, prefix)
        correct.append(lp[:, first_id(tok, " " + role)])
        other.append(
            torch.stack([lp[:, first_id(tok, " " + r)] for r in roles if r != role]).max(0).values
        )
    c, o = torch.stack(correct), torch.stack(other)
    rows = rows_by_key(result, "semantics_role_lens")
    _check_rows(
        rows,
        {"logp_correct": c, "logp_other_max": o, "frac_correct_gt_others": (c > o).double()},
        "all",
        n=2,
    )
    _check_rows(rows, {"logp_correct": c[:1]}, "recipient", n=1)
    assert result.options["semantics_role_lens"]["skip_reasons"] == {"name_at_start": 1}


def test_prefix_sum_policy_sums_every_prefix_token(tiny):
    model, reference, _ = tiny
    data = ParallelData.from_records(WORDS, name="w")
    # Latin-script words only: byte-level pieces of Chinese characters decode to no text.
    probe = WordLens(
        language="fr", dominant="en", few_shot=1, token_policy="prefix_sum",
        skip_rule="identical", drop_contained=False,
    )  # fmt: skip
    result = semantic_hub_scan(model, data, analyses=[probe], progress=False)
    tok = model.tokenizer
    texts = [tok.decode([i]) for i in range(len(tok))]
    special = set(tok.all_special_ids)

    def prefix_ids(word):
        out = []
        for i, text in enumerate(texts):
            stripped = text[1:] if text.startswith(" ") else text
            if i not in special and stripped and word.startswith(stripped):
                out.append(i)
        return out

    logp_dom, logp_tgt = [], []
    for i, w in enumerate(WORDS):
        demo = WORDS[(i + 1) % 4]["fr"]
        prompt = f'Français: "{demo}" - Français: "{demo}"\nFrançais: "{w["fr"]}" - Français: "'
        lp = last_token_logprobs(reference, model, prompt)
        ids = prefix_ids(w["en"])
        assert len(ids) >= 2  # e.g. "f", "fl", "flower"
        logp_dom.append(lp[:, ids].logsumexp(-1))
        logp_tgt.append(lp[:, prefix_ids(w["fr"])].logsumexp(-1))
    _check_rows(
        rows_by_key(result, "word_lens"),
        {"logp_dominant": torch.stack(logp_dom), "logp_target": torch.stack(logp_tgt)},
        "fr->fr",
        n=4,
    )
    assert result.options["word_lens"]["token_policy"] == "prefix_sum"


def test_final_norm_off_reads_raw_residuals(tiny):
    model, reference, _ = tiny
    data = ParallelData.from_records(WORDS, name="w")
    probe = WordLens(language="fr", dominant="en", few_shot=1, final_norm=False)
    result = semantic_hub_scan(model, data, analyses=[probe], progress=False)
    tok = model.tokenizer
    vals = []
    for i, w in enumerate(WORDS):
        demo = WORDS[(i + 1) % 4]["fr"]
        prompt = f'Français: "{demo}" - Français: "{demo}"\nFrançais: "{w["fr"]}" - Français: "'
        lp = last_token_logprobs(reference, model, prompt, final_norm=False)
        # the last layer is the model's output: HF's own logits there (no lens at all)
        ids = torch.tensor([token_ids(model, prompt)])
        with torch.no_grad():
            lp[-1] = torch.log_softmax(reference(ids).logits[0, -1].float(), -1)
        vals.append(lp[:, first_id(tok, w["fr"])])
    _check_rows(rows_by_key(result, "word_lens"), {"logp_target": torch.stack(vals)}, "fr->fr", n=4)
    assert result.options["word_lens"]["final_norm"] is False


def test_lens_probe_rejects_bad_input(tiny):
    model, _, _ = tiny
    data = ParallelData.from_records(WORDS, name="w")
    with pytest.raises(ValueError, match="token_policy"):
        TranslationLens(token_policy="last")
    with pytest.raises(ValueError, match="max_items"):
        TranslationLens(max_items=0)
    with pytest.raises(ValueError, match="few_shot"):
        TranslationLens(few_shot=-1)
    with pytest.raises(ValueError, match=r"needs data type\(s\) \['code', 'next'\]"):
        semantic_hub_scan(model, data, analyses=[CodeListProbe()], progress=False)
    with pytest.raises(ValueError, match="few_shot=5"):
        semantic_hub_scan(
            model, data, analyses=[TranslationLens(dominant="en", few_shot=5)], progress=False
        )
    with pytest.raises(ValueError, match="target='en' equals the dominant"):
        semantic_hub_scan(
            model, data, analyses=[TranslationLens(target="en", dominant="en")], progress=False
        )
    with pytest.raises(ValueError, match="source='de'"):
        semantic_hub_scan(model, data, analyses=[TranslationLens(source="de")], progress=False)
    no_meta = ParallelData.from_records(
        [{"numeral": "1+1", "words": "one plus one"}, {"numeral": "2+1", "words": "two plus one"}],
        name="nometa",
    )
    with pytest.raises(ValueError, match="lens_prompt"):
        semantic_hub_scan(model, no_meta, analyses=[ArithmeticProbe()], progress=False)
    assert attached_hooks(model) == []


def test_items_whose_targets_share_a_token_are_skipped_and_counted(tiny):
    model, _, _ = tiny
    tok = model.tokenizer
    # "flower" and "flowers" share their first token in the tiny tokenizer's vocabulary.
    assert first_id(tok, "flower") == first_id(tok, "flowers")
    records = [*WORDS, {"en": "flower", "zh": "花", "fr": "flowers"}]
    data = ParallelData.from_records(records, name="w5")
    probe = WordLens(language="fr", dominant="en", few_shot=1, drop_contained=False)
    result = semantic_hub_scan(model, data, analyses=[probe], progress=False)
    opts = result.options["word_lens"]
    assert opts["skipped_items"] >= 1 and opts["skip_reasons"].get("shared_token", 0) >= 1
    n = {r.n for r in result.rows}
    assert n == {opts["n_queries"]} and opts["n_queries"] == 5 - opts["skipped_items"]
    assert all(math.isfinite(r.mean) for r in result.rows)
    # by default the row is dropped before anything else ("flower" occurs inside "flowers")
    result = semantic_hub_scan(model, data, analyses=[WordLens(language="fr", dominant="en",
                               few_shot=1)], progress=False)  # fmt: skip
    opts = result.options["word_lens"]
    assert opts["dropped_contained"] == 1 and opts["n_queries"] == 4 - opts["skipped_items"]
