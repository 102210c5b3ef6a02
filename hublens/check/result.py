"""What a check measured: one :class:`CheckResult` per check, gathered in a :class:`CheckReport`.

Statuses: ``"pass"`` (within the threshold), ``"fail"`` (a number the scan would report is
wrong on this model: the CLI exits non-zero), ``"warn"`` (a known limitation worth knowing,
e.g. probe words whose first tokens collide in a language the model barely tokenizes; it does
not fail the check) and ``"skip"`` (not applicable, with the reason).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Status = Literal["pass", "fail", "warn", "skip"]
STATUSES: tuple[str, ...] = ("pass", "fail", "warn", "skip")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check.

    Attributes:
        name: Dotted name, ``group.check`` (e.g. ``"numerics.last_layer_lens"``).
        status: ``"pass"``, ``"fail"``, ``"warn"`` or ``"skip"``.
        value: The measured number (None when skipped or not numeric).
        threshold: The bound it is held to (None when the check only reports).
        unit: What ``value`` counts (e.g. ``"nats"``, ``"relative"``, ``"tokens"``, ``"s"``).
        detail: One line a reader can act on: what was compared, or why it was skipped.
        data: Extra measured facts (JSON-ready).
    """

    name: str
    status: Status
    value: float | None = None
    threshold: float | None = None
    unit: str = ""
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status={self.status!r}: choose one of {', '.join(STATUSES)}.")

    @classmethod
    def bounded(
        cls,
        name: str,
        value: float | int,
        threshold: float | int,
        *,
        unit: str,
        detail: str,
        **data: Any,
    ) -> CheckResult:
        """``pass`` when ``value <= threshold`` (and finite), else ``fail``."""
        ok = value == value and value <= threshold  # NaN fails
        return cls(
            name, "pass" if ok else "fail", float(value), float(threshold), unit, detail, dict(data)
        )

    @classmethod
    def skipped(cls, name: str, reason: str) -> CheckResult:
        """A check that does not apply to this model."""
        return cls(name, "skip", detail=reason)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)


@dataclass(frozen=True)
class CheckReport:
    """Every check run on one model.

    Attributes:
        model: The model's provenance (``HubModel.provenance.to_dict()``).
        results: One result per check, in the order run.
        quick: Whether only the quick subset ran.
        seconds: Wall time of the whole check.

    Example:
        >>> report = hublens.check(model)  # doctest: +SKIP
        >>> report.passed, report.failures()  # doctest: +SKIP
        (True, [])
        >>> print(report.to_text())  # doctest: +SKIP
    """

    model: dict[str, Any]
    results: tuple[CheckResult, ...]
    quick: bool = False
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        """True when no check failed (warnings and skips do not fail)."""
        return not self.failures()

    def failures(self) -> list[CheckResult]:
        """The failed checks."""
        return [r for r in self.results if r.status == "fail"]

    def __getitem__(self, name: str) -> CheckResult:
        for result in self.results:
            if result.name == name:
                return result
        raise KeyError(f"no check named {name!r}; have {[r.name for r in self.results]}")

    def counts(self) -> dict[str, int]:
        """How many checks ended in each status."""
        return {s: sum(r.status == s for r in self.results) for s in STATUSES}

    def summary(self) -> dict[str, Any]:
        """A small dict for a scan's provenance: counts, failures and warnings by name."""
        return {
            "passed": self.passed,
            "quick": self.quick,
            "counts": self.counts(),
            "failed": [r.name for r in self.results if r.status == "fail"],
            "warned": [r.name for r in self.results if r.status == "warn"],
            "seconds": round(self.seconds, 3),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (provenance, summary and every result)."""
        return {
            "model": self.model,
            "summary": self.summary(),
            "results": [r.to_dict() for r in self.results],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`to_dict` as JSON (atomically) and return the path."""
        from hublens.atomic import write_text_atomic

        return write_text_atomic(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=1))

    def to_text(self) -> str:
        """A fixed-width table: status, check, measured value, threshold, detail."""
        lines = [f"{'status':6}  {'check':30} {'value':>20} {'threshold':>10}  detail"]
        for r in self.results:
            value = "" if r.value is None else f"{r.value:.3g} {r.unit}".rstrip()
            bound = "" if r.threshold is None else f"{r.threshold:.3g}"
            lines.append(f"{r.status.upper():6}  {r.name:30} {value:>20} {bound:>10}  {r.detail}")
        c = self.counts()
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(
            f"{verdict}: {c['pass']} passed, {c['fail']} failed, {c['warn']} warnings, "
            f"{c['skip']} skipped in {self.seconds:.1f} s"
        )
        return "\n".join(lines)
