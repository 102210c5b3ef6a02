"""The performance targets of the benchmark suite, each checked on ratios from one run."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Target:
    """One target: ``value`` compared with ``bound`` (``op``: ``"<"``, ``"<="`` or ``">="``)."""

    name: str
    value: float | None
    op: str
    bound: float
    unit: str = "x"

    @property
    def met(self) -> bool | None:
        """Whether the measured value meets the bound (None: not measured)."""
        if self.value is None:
            return None
        compare = {"<": float.__lt__, "<=": float.__le__, ">=": float.__ge__}[self.op]
        return bool(compare(float(self.value), float(self.bound)))

    def to_dict(self) -> dict[str, Any]:
        """Plain data, with ``met``."""
        return {**asdict(self), "met": self.met}


def evaluate(section: dict[str, Any]) -> list[Target]:
    """The targets for one model's results (missing sections give unmeasured targets)."""
    from hublens.bench import forward, lens, scan_names, steering

    fw = section.get("forward", {}).get("variants", {})
    ls = section.get("lens", {}).get("variants", {})
    sc = section.get("scan", {}).get("variants", {})
    mem = section.get("memory", {}).get("sizes", [])
    st = section.get("steering", {}).get("variants", {})

    def get(table: dict[str, Any], name: str, key: str) -> float | None:
        value = table.get(name, {}).get(key)
        return None if value is None else float(value)

    growth = None
    if len(mem) >= 2:
        first, last = mem[0]["scan_peak_mb"], mem[-1]["scan_peak_mb"]
        growth = (last - first) / first * 100 if first > 0 else None
    lens_speedup = get(ls, lens.TL, "ratio_vs_hublens")  # per-round TL / hublens
    return [
        Target(
            "hublens capture taps / bare bridge forward",
            get(fw, forward.CAPTURE, "ratio_vs_bridge"),
            "<=",
            1.05,
        ),
        Target(
            "full scan / plain-transformers reference",
            get(sc, scan_names.HUBLENS, "ratio_vs_reference"),
            "<=",
            1.3,
        ),
        Target(
            "full scan / nnsight doing the same",
            get(sc, scan_names.HUBLENS, "ratio_vs_nnsight"),
            "<=",
            1.0,
        ),
        Target("TL logit_lens time / hublens lens readout", lens_speedup, ">=", 2.0),
        Target(
            "hublens lens readout / one batched matmul",
            get(ls, lens.HUBLENS, "ratio_vs_matmul"),
            "<=",
            1.2,
        ),
        Target("scan peak memory growth, first to last size", growth, "<", 10.0, "%"),
        Target(
            "steered / unsteered greedy generation",
            get(st, steering.STEERED, "ratio_vs_plain"),
            "<=",
            1.1,
        ),
    ]
