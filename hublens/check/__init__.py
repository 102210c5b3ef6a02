"""``hublens check``: can these numbers be trusted on this model? A preflight in seconds.

Modules (one group of checks each):

* :mod:`~hublens.check.numerics`: last-layer lens = the model's log-probs, captured states =
  transformers' hidden states, the dtype's lens error against fp32;
* :mod:`~hublens.check.tokenization`: the built-in probe words under the first-token policy;
* :mod:`~hublens.check.invariance`: the BOS policy, right-padding and batch-size invariance;
* :mod:`~hublens.check.hygiene`: hooks before/after, steered KV-cached = uncached generation;
* :mod:`~hublens.check.cost`: forward time and peak memory at the scan's batch size;
* :mod:`~hublens.check.tolerance`: the thresholds, derived from the computation;
* :mod:`~hublens.check.result`: :class:`CheckResult`, :class:`CheckReport`;
* :mod:`~hublens.check.run`: :func:`check`; :mod:`~hublens.check.cli`: ``hublens check``.

Example:
    >>> report = hublens.check(model)  # doctest: +SKIP
    >>> report.passed  # doctest: +SKIP
    True
"""

from hublens.check.result import CheckReport, CheckResult
from hublens.check.run import CHECKS, QUICK, check, last_report

__all__ = ["CHECKS", "QUICK", "CheckReport", "CheckResult", "check", "last_report"]
