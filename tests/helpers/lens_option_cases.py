"""Every lens analysis on tiny random models, with the options a test passes (``lens=``, ...).

:func:`run_case` builds the case's model and data and returns its rows as plain tuples, so that
the numbers of one setting can be compared with another's, or with the numbers the code gave
before ``lens=`` existed (``tests/unit/analyses/lens_option_golden.json``, written by
``python -m tests.helpers.lens_option_cases`` on the commit before the lens option).
"""

from __future__ import annotations

import itertools
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import torch

GOLDEN = Path(__file__).parents[1] / "unit" / "analyses" / "lens_option_golden.json"

EXTRA = (
    "cats and dogs or not, and or not, x = [a, b] and y = [cat, mat] or not",
    "Emma gave Liam the cat . The cat saw Noah . agent theme recipient agent theme recipient",
)
WORDS = [
    {"en": "flower", "zh": "花", "fr": "fleur"},
    {"en": "cat", "zh": "猫", "fr": "chat"},
    {"en": "mat", "zh": "垫子", "fr": "tapis"},
    {"en": "warm", "zh": "温暖", "fr": "chaud"},
]
ARITH = [
    {
        "id": "a",
        "numeral": "3+2",
        "words": "x",
        "meta": {"lens_prompt": "5=3+", "lens_answer": 2, "op": "+"},
    },
    {
        "id": "b",
        "numeral": "2+3",
        "words": "x",
        "meta": {"lens_prompt": "5=2+", "lens_answer": 3, "op": "+"},
    },
    {
        "id": "c",
        "numeral": "4*2",
        "words": "x",
        "meta": {"lens_prompt": "8=4*", "lens_answer": 2, "op": "*"},
    },
    {
        "id": "d",
        "numeral": "1*5",
        "words": "x",
        "meta": {"lens_prompt": "5=1*", "lens_answer": 5, "op": "*"},
    },
]
CODE = [
    {"code": "x = [a,", "next": "b"},
    {"code": "def add(a, b): return [a,", "next": "b"},
    {"code": "y = [cat,", "next": "mat"},
]
SEMANTICS = [
    {
        "sentence": "Emma gave Liam the cat .",
        "logical_form": "x",
        "meta": {
            "name_offsets": {"Emma": 0, "Liam": 10},
            "name_roles": {"Emma": "agent", "Liam": "recipient"},
        },
    },
    {
        "sentence": "The cat saw Noah .",
        "logical_form": "x",
        "meta": {"name_offsets": {"Noah": 12}, "name_roles": {"Noah": "theme"}},
    },
]
SENTENCES = [
    {"en": "The cat sleeps on the warm mat.", "zh": "猫在温暖的垫子上睡觉。"},
    {"en": "three plus two equals five", "zh": "三加二等于五"},
    {"en": "flower", "zh": "花"},
]
ZH_TEXTS = ["猫在温暖的垫子上睡觉。", "两只猫在垫子上。"]
DICTIONARY = {
    "猫": ["cat"],
    "温暖": ["warm"],
    "垫子": ["cushion", "mat", "pad"],
    "睡觉": ["sleep"],
    "在": ["at"],
    "上": ["on"],
}

_KEYS = itertools.count()

#: Case name -> which model it runs on.
CASES = {
    "translation": "probe",
    "arithmetic": "probe",
    "code_list": "probe",
    "semantics": "probe",
    "language": "probe",
    "running_text": "char",
    "running_text_paper": "char",
    "modality": "multimodal",
}


@cache
def model_for(kind: str, arch: str = "llama") -> tuple[Any, Any]:
    """(HubModel or MultimodalModel, the plain transformers reference) of a case kind."""
    import hublens
    from tests.conftest import build_tiny

    if kind == "probe":
        hf, reference, tok = build_tiny(arch, extra_corpus=EXTRA)
        return hublens.load_model(hf, tok), reference
    if kind == "char":
        from tests.unit.analyses.test_language_and_running_text import _char_level_model

        return _char_level_model(arch)
    from hublens.adapters.base import ModalityAdapter, MultimodalModel
    from hublens.adapters.projector import MLPProjector, ProjectorConfig
    from tests.unit.adapters.test_adapter_base import RandomEncoder, _prepare

    hf, reference, tok = build_tiny(arch)
    lm = hublens.load_model(hf, tok)
    torch.manual_seed(5)
    projector = MLPProjector(ProjectorConfig(d_in=12, d_out=lm.d_model, hidden=16, window=1))
    adapter = ModalityAdapter("image", RandomEncoder().eval(), projector, prepare=_prepare)
    return MultimodalModel(lm, {"image": adapter}), reference


def build_case(case: str, model: Any, **options: Any) -> tuple[Any, Any]:
    """(the analysis with ``options``, its data) of a case."""
    from hublens.analyses import (
        ArithmeticProbe,
        CodeListProbe,
        SemanticsRoleProbe,
        TranslationLens,
    )
    from hublens.analyses.language import LanguageProbability, language_given_token
    from hublens.analyses.modality_lens import ModalityLens
    from hublens.analyses.running_text import ChineseRunningText
    from hublens.data import ParallelData

    if case == "translation":
        analysis = TranslationLens(source="fr", target="zh", dominant="en", few_shot=1, **options)
        return analysis, ParallelData.from_records(WORDS, name="w")
    if case == "arithmetic":
        return ArithmeticProbe(**options), ParallelData.from_records(ARITH, name="arith")
    if case == "code_list":
        return CodeListProbe(**options), ParallelData.from_records(CODE, name="lists")
    if case == "semantics":
        return SemanticsRoleProbe(**options), ParallelData.from_records(SEMANTICS, name="sem")
    if case == "language":
        gen = torch.Generator().manual_seed(0)
        raw = torch.rand(model.d_vocab, 3, generator=gen)
        raw[torch.rand(model.d_vocab, generator=gen) < 0.3] = 0
        analysis = LanguageProbability(
            languages=("en", "zh", "fr"), token_language=language_given_token(raw.double()),
            **options,
        )  # fmt: skip
        return analysis, ParallelData.from_records(SENTENCES, name="lp")
    if case in ("running_text", "running_text_paper"):
        rule = {"word_rule": "single-token", "bos": "none"} if case.endswith("paper") else {}
        analysis = ChineseRunningText(dictionary=DICTIONARY, **rule, **options)
        records = [{"zh": t, "en": "x"} for t in ZH_TEXTS]
        return analysis, ParallelData.from_records(records, name="zh")
    if case == "modality":
        gen = torch.Generator().manual_seed(7)
        records = []
        for i, label in enumerate(["cat", "mat", "cat", "flower"]):
            raw = torch.randn(3, 12, generator=gen) * 2
            marker = model.add_media("image", raw, key=f"lo-{next(_KEYS)}")
            records.append({"id": str(i), "image": marker, "caption": label,
                            "meta": {"label": label}})  # fmt: skip
        analysis = ModalityLens(media="image", baseline_word="sleeps", seed=3, **options)
        return analysis, ParallelData.from_records(records)
    raise ValueError(case)


def run_case(case: str, arch: str = "llama", **options: Any) -> list[tuple[Any, ...]]:
    """The rows of a case as tuples ``(analysis, layer, metric, group, mean, lo, hi, n, lens)``."""
    from hublens import semantic_hub_scan

    model, _ = model_for(CASES[case], arch)
    analysis, data = build_case(case, model, **options)
    result = semantic_hub_scan(
        model, data, analyses=[analysis], batch_size=2, progress=False, check=False
    )
    return [tuple(vars(row).values()) for row in result.rows]


def main() -> int:
    """Write the golden numbers of today's code (``final_norm`` True and False)."""
    golden = {
        f"{case}/{arch}/{norm}": [list(r[:8]) for r in run_case(case, arch, final_norm=norm)]
        for case in CASES
        for arch in (("llama",) if CASES[case] == "multimodal" else ("llama", "gemma3"))
        for norm in (True, False)
    }
    GOLDEN.write_text(json.dumps(golden, indent=0, ensure_ascii=False), encoding="utf-8")
    print(f"wrote {GOLDEN} ({len(golden)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
