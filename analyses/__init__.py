"""Semantic-hub analyses built on :mod:`hublens.hooks` captures.

Importing this package registers every analysis by name in :mod:`hublens.registry`, so
``semantic_hub_scan(model, data, analyses=["similarity", "translation_lens"])`` works; pass the
objects (``Similarity(centered=True)``) for other options.
"""

from hublens.analyses.arithmetic_probe import ArithmeticProbe
from hublens.analyses.code_probes import CodeArgsProbe, CodeListProbe
from hublens.analyses.defaults import default_analyses
from hublens.analyses.language import LanguageProbability
from hublens.analyses.modality_lens import ModalityLens
from hublens.analyses.patch_labels import PatchLabels
from hublens.analyses.probe_base import LensProbe
from hublens.analyses.running_text import ChineseRunningText
from hublens.analyses.semantics_probe import SemanticsRoleProbe
from hublens.analyses.similarity import PairSums, Similarity
from hublens.analyses.translation import TranslationReadout, translation_readout
from hublens.analyses.translation_lens import TranslationLens, WordLens

__all__ = [
    "ArithmeticProbe",
    "ChineseRunningText",
    "CodeArgsProbe",
    "CodeListProbe",
    "LanguageProbability",
    "LensProbe",
    "ModalityLens",
    "PairSums",
    "PatchLabels",
    "SemanticsRoleProbe",
    "Similarity",
    "TranslationLens",
    "TranslationReadout",
    "WordLens",
    "default_analyses",
    "translation_readout",
]
