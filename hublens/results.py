"""`ScanResult`: per-layer numbers with confidence intervals, and their provenance."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from hublens.analysis import ROW_COLUMNS, Row
from hublens.atomic import write_text_atomic

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

T = TypeVar("T")


def row_to_json(row: Any) -> dict[str, Any]:
    """A result row (a dataclass) as a JSON-ready dict: NaN becomes null."""
    return {
        k: None if isinstance(v, float) and math.isnan(v) else v for k, v in asdict(row).items()
    }


def row_from_json(cls: type[T], fields: dict[str, Any]) -> T:
    """Inverse of :func:`row_to_json`: null becomes NaN."""
    return cls(**{k: math.nan if v is None else v for k, v in fields.items()})


def dump_json(payload: dict[str, Any], path: str | Path | None) -> str:
    """JSON text of ``payload`` (UTF-8, not ASCII-escaped); also written to ``path`` if given."""
    text = json.dumps(payload, ensure_ascii=False, indent=1)
    if path is not None:
        write_text_atomic(path, text)
    return text


@dataclass
class ScanResult:
    """What a semantic hub scan measured.

    Attributes:
        rows: One row per (analysis, layer, metric, group).
        provenance: Model provenance, data name / hash / size, layers, batch size, versions.
        options: Per analysis, the settings it ran with (final norm, token policy, ...).
        examples: Per analysis, a few example inputs (shown, escaped, in the HTML report).
        extras: Views shown in the report besides the analyses, JSON-ready: ``"lens_grids"``
            holds :meth:`hublens.views.LensGrid.to_dict` payloads (token x layer grids).
    """

    rows: list[Row]
    provenance: dict[str, Any]
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def analyses(self) -> list[str]:
        """Names of the analyses, in the order they appear."""
        return list(dict.fromkeys(row.analysis for row in self.rows))

    def table(self) -> pd.DataFrame:
        """A tidy DataFrame, one row per Row.

        Columns: ``analysis, layer, metric, group, mean, ci_low, ci_high, n, lens`` (``lens``
        is ``""`` for analyses that read no lens).
        """
        import pandas as pd

        return pd.DataFrame([asdict(row) for row in self.rows], columns=list(ROW_COLUMNS))

    @property
    def lenses(self) -> list[str]:
        """Names of the lenses the rows were read through, in order (``""`` left out)."""
        return [n for n in dict.fromkeys(row.lens for row in self.rows) if n]

    def select(
        self,
        analysis: str,
        metric: str | None = None,
        group: str | None = None,
        lens: str | None = None,
    ) -> list[Row]:
        """Rows of one analysis (and metric / group / lens), sorted by layer.

        With several lenses and ``lens=None`` the rows of every lens are returned (sorted by
        metric, group, lens, layer); pass ``lens=`` for one lens's line.
        """
        rows = [
            r
            for r in self.rows
            if r.analysis == analysis
            and (metric is None or r.metric == metric)
            and (group is None or r.group == group)
            and (lens is None or r.lens == lens)
        ]
        order = {name: i for i, name in enumerate(dict.fromkeys(r.lens for r in rows))}
        return sorted(rows, key=lambda r: (r.metric, r.group, order[r.lens], r.layer))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (NaN becomes null; ``extras`` only when there are some)."""
        payload = {
            "provenance": self.provenance,
            "options": self.options,
            "examples": self.examples,
            "rows": [row_to_json(row) for row in self.rows],
        }
        if self.extras:
            payload["extras"] = self.extras
        return payload

    def to_json(self, path: str | Path | None = None) -> str:
        """Serialise to JSON; also write it to ``path`` if given."""
        return dump_json(self.to_dict(), path)

    @classmethod
    def from_json(cls, text: str) -> ScanResult:
        """Inverse of :meth:`to_json`."""
        payload = json.loads(text)
        rows = [row_from_json(Row, row) for row in payload["rows"]]
        return cls(
            rows,
            payload["provenance"],
            payload.get("options", {}),
            payload.get("examples", {}),
            payload.get("extras", {}),
        )

    @classmethod
    def combine(cls, results: Sequence[ScanResult]) -> ScanResult:
        """One result (and one report) from scans of several data sets with the same model.

        Analysis names become ``"<data name>: <analysis>"`` so that each stays distinct; the
        provenance keeps each scan's data and layers under ``"scans"``.

        Args:
            results: Two or more scan results of the same model.

        Returns:
            The combined result.

        Raises:
            ValueError: Fewer than two results, different models, or a data set scanned twice.

        Example:
            >>> both = ScanResult.combine([words_result, sentences_result])  # doctest: +SKIP
        """
        results = list(results)
        if len(results) < 2:
            raise ValueError(f"combine() got {len(results)} result(s); pass two or more.")
        models = {json.dumps(r.provenance.get("model"), sort_keys=True) for r in results}
        if len(models) != 1:
            raise ValueError("combine(): the results come from different models; pass one model's.")
        names = [str(r.provenance.get("data", {}).get("name", "")) for r in results]
        if len(set(names)) != len(names):
            raise ValueError(f"combine(): data sets {names} repeat; scan each data set once.")
        rows: list[Row] = []
        options: dict[str, dict[str, Any]] = {}
        examples: dict[str, list[str]] = {}
        for data_name, result in zip(names, results, strict=True):
            rename = {a: f"{data_name}: {a}" for a in [*result.options, *result.analyses]}
            rows += [replace(r, analysis=rename[r.analysis]) for r in result.rows]
            options.update({rename[k]: v for k, v in result.options.items()})
            examples.update(
                {rename.get(k, f"{data_name}: {k}"): v for k, v in result.examples.items()}
            )
        first = results[0].provenance
        provenance = {k: v for k, v in first.items() if k not in ("data", "layers", "batch_size")}
        provenance["data"] = {"name": " + ".join(names)}
        provenance["scans"] = {
            data_name: {k: r.provenance.get(k) for k in ("data", "layers", "batch_size")}
            for data_name, r in zip(names, results, strict=True)
        }
        extras: dict[str, Any] = {}
        for result in results:  # list-valued extras (e.g. lens grids) are concatenated
            for key, value in result.extras.items():
                extras[key] = [*extras.get(key, []), *value] if isinstance(value, list) else value
        return cls(rows, provenance, options, examples, extras)

    def figure(self, name: str) -> go.Figure:
        """Plotly figure of one analysis: mean per layer with a 95% CI band per metric/group."""
        from hublens.report import figure

        return figure(self, name)

    def save(self, directory: str | Path) -> Path:
        """Write ``result.json``, ``result.csv`` and a self-contained ``report.html``.

        Returns:
            The path of the HTML report.
        """
        from hublens.report import write_html

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.to_json(out / "result.json")
        spreadsheet_safe(self.table()).to_csv(out / "result.csv", index=False)
        return write_html(self, out / "report.html")


#: First characters that make a spreadsheet read a cell as a formula.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose string cells cannot run as spreadsheet formulas.

    A string cell starting with ``=``, ``+``, ``-``, ``@`` (or a tab or carriage return) gets a
    leading ``'``, so ``=HYPERLINK(...)`` in an analysis, data or group name stays text when
    ``result.csv`` is opened in a spreadsheet. Numbers, negative ones included, are untouched.
    """
    out = table.copy()
    for column in out.columns:
        values = out[column].tolist()
        if any(isinstance(v, str) and v.startswith(_FORMULA_STARTS) for v in values):
            out[column] = [
                "'" + v if isinstance(v, str) and v.startswith(_FORMULA_STARTS) else v
                for v in values
            ]
    return out
