"""Compatibility re-export of the logit-lens probes (import them from :mod:`hublens.analyses`).

The probes live in one module each: :mod:`~hublens.analyses.tokens` (word-to-token policy),
:mod:`~hublens.analyses.probe_base`, :mod:`~hublens.analyses.translation_lens`,
:mod:`~hublens.analyses.arithmetic_probe`, :mod:`~hublens.analyses.code_probes` and
:mod:`~hublens.analyses.semantics_probe`.
"""

from hublens.analyses.arithmetic_probe import ArithmeticProbe
from hublens.analyses.code_probes import CodeArgsProbe, CodeListProbe
from hublens.analyses.probe_base import LensProbe
from hublens.analyses.semantics_probe import SemanticsRoleProbe
from hublens.analyses.tokens import TOKEN_POLICIES, prefix_token_ids, target_token_ids
from hublens.analyses.translation_lens import LANGUAGE_NAMES, TranslationLens, WordLens

__all__ = [
    "LANGUAGE_NAMES",
    "TOKEN_POLICIES",
    "ArithmeticProbe",
    "CodeArgsProbe",
    "CodeListProbe",
    "LensProbe",
    "SemanticsRoleProbe",
    "TranslationLens",
    "WordLens",
    "prefix_token_ids",
    "target_token_ids",
]
