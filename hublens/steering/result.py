"""`SteeringResult`: outcome tables of a steering intervention over strengths and seeds."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hublens.results import dump_json, row_from_json, row_to_json

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

#: Columns of :meth:`SteeringResult.table`, in order.
STEERING_COLUMNS = ("intervention", "group", "strength", "seed", "metric", "value", "n")


@dataclass(frozen=True)
class SteeringRow:
    """One number: a metric of one (group, strength, seed) cell.

    Attributes:
        intervention: ``"arithmetic"``, ``"code"`` or ``"sentiment"``.
        group: Sub-condition, e.g. ``"zh/en-vector"``, or ``""``.
        strength: The steering strength (0 = unsteered).
        seed: The seed of this replicate.
        metric: E.g. ``"correct"`` (a fraction of items) or ``"perplexity"`` (a mean).
        value: The number (NaN if undefined).
        n: Items it averages.
    """

    intervention: str
    group: str
    strength: float
    seed: int
    metric: str
    value: float
    n: int


@dataclass
class SteeringResult:
    """Outcomes of one intervention over strengths and seeds.

    Attributes:
        intervention: Its name.
        rows: One row per (group, strength, seed, metric).
        provenance: Model provenance, layer, site, data, versions.
        options: Settings it ran with (strengths, seeds, sizes, vector construction).
        examples: A few example generations (shown, escaped, in the HTML report).
        metrics: Metric names in display order.

    Example:
        >>> result = run_arithmetic_intervention(model)  # doctest: +SKIP
        >>> result.summary()  # mean ± std over seeds  # doctest: +SKIP
        >>> result.save("report/steering")  # doctest: +SKIP
    """

    intervention: str
    rows: list[SteeringRow]
    provenance: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """Tidy DataFrame, one row per (group, strength, seed, metric)."""
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.rows], columns=list(STEERING_COLUMNS))

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation over seeds per (group, strength, metric).

        Columns ``group, strength, metric, mean, std, n_seeds, n`` (``n`` summed over seeds);
        ``std`` is the sample standard deviation (NaN for one seed).
        """
        table = self.table()
        grouped = table.groupby(["group", "strength", "metric"], sort=False)["value"]
        out = grouped.agg(mean="mean", std="std", n_seeds="count").reset_index()
        out["n"] = table.groupby(["group", "strength", "metric"], sort=False)["n"].sum().values
        return out

    def wide(self, metrics: list[str] | None = None) -> pd.DataFrame:
        """Summary with one column per metric, cells ``"mean ± std"``, rows (group, strength)."""
        summary = self.summary()
        metrics = metrics or self.metrics or list(dict.fromkeys(summary["metric"]))
        summary = summary[summary["metric"].isin(metrics)]
        summary = summary.assign(
            cell=[_cell(m, s) for m, s in zip(summary["mean"], summary["std"], strict=False)]
        )
        wide = summary.pivot_table(
            index=["group", "strength"],
            columns="metric",
            values="cell",
            aggfunc="first",
            sort=False,
        )
        return wide[[m for m in metrics if m in wide.columns]]

    def to_markdown(self, metrics: list[str] | None = None) -> str:
        """The :meth:`wide` table as a Markdown table (mean ± std over seeds)."""
        wide = self.wide(metrics)
        grouped = any(group for group, _ in wide.index)  # no group column when there are none
        head = (["group"] if grouped else []) + ["strength", *wide.columns]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for (group, strength), row in wide.iterrows():
            first = f"| {group} " if grouped else ""
            lines.append(f"{first}| {strength:g} | " + " | ".join(row.astype(str)) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (NaN becomes null)."""
        return {
            "intervention": self.intervention,
            "provenance": self.provenance,
            "options": self.options,
            "examples": self.examples,
            "metrics": self.metrics,
            "rows": [row_to_json(r) for r in self.rows],
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to JSON; also write it to ``path`` if given."""
        return dump_json(self.to_dict(), path)

    @classmethod
    def from_json(cls, text: str) -> SteeringResult:
        """Inverse of :meth:`to_json`."""
        payload = json.loads(text)
        rows = [row_from_json(SteeringRow, row) for row in payload["rows"]]
        return cls(
            payload["intervention"],
            rows,
            payload.get("provenance", {}),
            payload.get("options", {}),
            payload.get("examples", []),
            payload.get("metrics", []),
        )

    def figure(self) -> go.Figure:
        """Plotly figure: each metric against strength, one line per group, ± std bars."""
        from hublens.steering.report import steering_figure

        return steering_figure(self)

    def save(self, directory: str | Path) -> Path:
        """Write ``<intervention>.json``, ``<intervention>.csv`` and a self-contained HTML.

        Returns:
            The path of the HTML file.
        """
        from hublens.steering.report import write_steering_html

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.to_json(out / f"{self.intervention}.json")
        self.table().to_csv(out / f"{self.intervention}.csv", index=False)
        return write_steering_html([self], out / f"{self.intervention}.html")


def _cell(mean: float, std: float) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "n/a"
    digits = 2 if abs(mean) >= 10 else 3
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def provenance_of(model: Any) -> dict[str, Any]:
    """Model provenance for a result (the HubModel's, plus its BOS policy)."""
    provenance = getattr(model, "provenance", None)
    facts = provenance.to_dict() if provenance is not None else {"name": type(model).__name__}
    return {"model": facts, "prepend_bos": bool(getattr(model, "prepend_bos", True))}
