"""Activation patching through the hub: concept and language patching across translation prompts.

Modules (one idea each):

* :mod:`~hublens.patching.prompts`: few-shot translation prompts (the Wendler format) and the
  word-table checks;
* :mod:`~hublens.patching.forwards`: read states at a position; read next-token log-probs under
  a patch (the patch is :func:`hublens.steering.hook.patch_hooks`, i.e. the one
  :class:`~hublens.steering.hook.SteerHook` in ``"replace"`` mode);
* :mod:`~hublens.patching.concept`: :class:`ConceptPatching` (Dumas et al., 2025) with its
  controls, as a :class:`~hublens.results.ScanResult`;
* :mod:`~hublens.patching.generate`: prompt-only patching under KV-cached generation;
* :mod:`~hublens.patching.cli`: ``hublens patch``.

Example:
    >>> from hublens.patching import ConceptPatching  # doctest: +SKIP
    >>> result = ConceptPatching(source="fr", target="zh").run(model)  # doctest: +SKIP
    >>> result.save("report/patching")  # doctest: +SKIP
"""

from hublens.patching.concept import ANALYSIS, CONDITIONS, READINGS, ConceptPatching
from hublens.patching.forwards import PatchTarget, read_states, resolve_positions

__all__ = [
    "ANALYSIS",
    "CONDITIONS",
    "READINGS",
    "ConceptPatching",
    "PatchTarget",
    "read_states",
    "resolve_positions",
]
