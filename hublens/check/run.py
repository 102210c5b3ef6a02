"""``hublens.check(model)``: run the checks, each isolated, into one :class:`CheckReport`.

A check that raises becomes a ``fail`` naming the exception (the rest still run); hooks are
removed by each check's own ``model.hooks(...)`` context on any exit, and ``hooks.after``
verifies that. The quick subset (:data:`QUICK`: the hook checks, BOS policy and the last-layer
lens, one short forward) is what :func:`hublens.semantic_hub_scan` runs by default.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from hublens.check import cost, hygiene, invariance, numerics, tokenization
from hublens.check.context import CheckContext, probe_texts, sampled_layers
from hublens.check.result import CheckReport, CheckResult
from hublens.model import HubModel

CheckFn = Callable[[CheckContext], list[CheckResult]]

#: Every check group, in the order run (``hooks.before`` first, ``hooks.after`` last).
CHECKS: dict[str, CheckFn] = {
    "hooks.before": hygiene.hooks_before,
    "numerics.last_layer_lens": numerics.last_layer_lens,
    "numerics.hidden_states": numerics.hidden_states,
    "tokens": tokenization.probe_words,
    "inputs.bos": invariance.bos,
    "inputs.padding": invariance.padding,
    "numerics.dtype_lens": numerics.dtype_lens,
    "steering.kv_cache": hygiene.steered_kv_cache,
    "cost.forward": cost.forward_cost,
    "hooks.after": hygiene.hooks_after,
}
#: The cheap subset a scan runs by default.
QUICK: tuple[str, ...] = ("hooks.before", "numerics.last_layer_lens", "inputs.bos", "hooks.after")

# The last report of each model, for a scan's provenance.
_LAST: weakref.WeakKeyDictionary[HubModel, CheckReport] = weakref.WeakKeyDictionary()


def check(
    model: HubModel | str,
    *,
    quick: bool = False,
    only: Sequence[str] | None = None,
    batch_size: int = 8,
    lens: Any = None,
) -> CheckReport:
    """Check that hublens's numbers can be trusted on ``model``; seconds on a small model.

    Args:
        model: A HubModel, or a name/path for :func:`hublens.load_model`.
        quick: Run only the cheap subset (:data:`QUICK`).
        only: Run only these checks (keys of :data:`CHECKS`); overrides ``quick``.
        batch_size: The scan's batch size, for the cost check.
        lens: The lens whose last layer must equal the model's log-probs (default the logit
            lens, ``LogitLens.from_model(model, final_norm=False)``); pass your own (a tuned or
            Jacobian lens that is the identity at the last layer) to check it.

    Returns:
        The report: ``.passed``, ``.to_text()``, ``.save(path)``, ``.summary()``.

    Raises:
        ValueError: Unknown check names, or a bad ``batch_size`` (before any forward).

    Example:
        >>> report = hublens.check("smollm2-135m")  # doctest: +SKIP
        >>> print(report.to_text())  # doctest: +SKIP
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: pass a positive integer.")
    names = list(only) if only is not None else list(QUICK if quick else CHECKS)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ValueError(f"only={unknown}: unknown checks; choose from {', '.join(CHECKS)}.")
    if not isinstance(model, HubModel):
        from hublens.loading import load_model

        model = load_model(model)
    ctx = CheckContext(
        model=model,
        texts=probe_texts(),
        batch_size=batch_size,
        lens=lens,
        layers=sampled_layers(model.n_layers),
    )
    started = time.perf_counter()
    results: list[CheckResult] = []
    for name in names:
        try:
            results += CHECKS[name](ctx)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            results.append(
                CheckResult(name, "fail", detail=f"raised {type(exc).__name__}: {exc}"[:300])
            )
    report = CheckReport(
        model=model.provenance.to_dict(),
        results=tuple(results),
        quick=quick and only is None,
        seconds=time.perf_counter() - started,
    )
    if only is None and not quick:  # a scan records the last FULL check only
        _LAST[model] = report
    return report


def last_report(model: HubModel) -> CheckReport | None:
    """The last full report (all checks) :func:`check` made for ``model`` here, or None."""
    return _LAST.get(model)
