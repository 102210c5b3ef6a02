"""Activation patching through the hub: concept and language patching across translation prompts.

Modules (one idea each):

* :mod:`~hublens.patching.prompts`: few-shot translation prompts (the Wendler format) and the
  word-table checks;
* :mod:`~hublens.patching.forwards`: read states at a position; read next-token log-probs under
  a patch (the patch is :func:`hublens.steering.hook.patch_hooks`, i.e. the one
  :class:`~hublens.steering.hook.SteerHook` in ``"replace"`` mode);
* :mod:`~hublens.patching.concept`: :class:`ConceptPatching` (Dumas et al., 2025) with its
  controls, as a :class:`~hublens.results.ScanResult`;
* :mod:`~hublens.patching.patchscope`: the patchscope readout (a state decoded through an
  identity prompt, per layer; no training), :func:`patchscope` rows with CIs;
* :mod:`~hublens.patching.patchscope_translation`: :class:`TranslationPatchscope`, the
  patchscope of translation prompts on a word table;
* :mod:`~hublens.patching.generate`: prompt-only patching under KV-cached generation (also the
  greedy patchscope);
* :mod:`~hublens.patching.cli`: ``hublens patch`` and ``hublens patchscope``.

Example:
    >>> from hublens.patching import ConceptPatching  # doctest: +SKIP
    >>> result = ConceptPatching(source="fr", target="zh").run(model)  # doctest: +SKIP
    >>> result.save("report/patching")  # doctest: +SKIP
"""

from hublens.patching.concept import ANALYSIS, CONDITIONS, READINGS, ConceptPatching
from hublens.patching.forwards import PatchTarget, read_states, resolve_positions
from hublens.patching.patchscope import (
    IDENTITY_PROMPT,
    PATCHSCOPE,
    PatchscopeReadout,
    patchscope,
    patchscope_readout,
    placeholder_position,
)
from hublens.patching.patchscope_translation import TranslationPatchscope

__all__ = [
    "ANALYSIS",
    "CONDITIONS",
    "READINGS",
    "ConceptPatching",
    "IDENTITY_PROMPT",
    "PATCHSCOPE",
    "PatchTarget",
    "PatchscopeReadout",
    "TranslationPatchscope",
    "patchscope",
    "patchscope_readout",
    "placeholder_position",
    "read_states",
    "resolve_positions",
]
