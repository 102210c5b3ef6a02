"""``reproduce``: every scan the model supports on built-in data, then a verdict per claim.

The scans are :func:`hublens.semantic_hub_scan` with each built-in data set's default analyses
(the paper's), on a seeded sample of :data:`SIZES` items (``quick``) or the data sets' default
sizes (``full``), plus the arithmetic trajectories (:mod:`hublens.views.trajectories`), and on a
model with an ``"image"`` adapter (:func:`hublens.adapters.instances.load_vision_model`) the
per-patch vision labels (:mod:`hublens.analyses.patch_labels`). Media experiments are skipped
as "not applicable" on a text-only model; steering is not run here (``hublens steer``). Each
claim's verdict follows from the rows by the rule in :mod:`hublens.reproduce.claims`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hublens.analysis import Row
from hublens.reproduce.claims import CLAIMS, Claim, Verdict, judge
from hublens.results import dump_json, row_to_json

Size = Literal["quick", "full"]
#: Steps that need media, and the media they need (skipped on models without it).
MEDIA_STEPS = {"vision-patches": "vision"}
#: Items per data set: ``quick`` (a seeded sample) and ``full`` (None: the defaults' sizes).
SIZES: dict[str, dict[str, int | None]] = {
    "quick": {
        "multilingual-sentences": 24,
        "multilingual-words": 24,
        "arithmetic": 48,
        "code-lists": 24,
        "code-args": 24,
        "semantics": 24,
        "trajectories": 40,
        "vision-patches": 24,
    },
    "full": {
        "multilingual-sentences": None,
        "multilingual-words": None,
        "arithmetic": None,
        "code-lists": None,
        "code-args": None,
        "semantics": None,
        "trajectories": 200,
        "vision-patches": 48,
    },
}


@dataclass
class Reproduction:
    """What :func:`reproduce` measured and concluded.

    Attributes:
        model: The model's provenance.
        n_layers: Its depth (the middle layers follow from it).
        size: ``"quick"`` or ``"full"``.
        verdicts: Claim key -> verdict.
        rows: Data set (or ``"trajectories"``) -> its rows.
        seconds: Step -> wall seconds.
        extras: Figures' data for the report (lens grids, the trajectory figure's JSON).
    """

    model: dict[str, Any]
    n_layers: int
    size: str
    verdicts: dict[str, Verdict]
    rows: dict[str, list[Row]]
    seconds: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary: claims with verdicts and numbers, rows, timings."""
        claims = []
        for claim in CLAIMS:
            v = self.verdicts[claim.key]
            claims.append(
                {"key": claim.key, "section": claim.section, "claim": claim.claim,
                 "data": claim.data, "rule": claim.rule, "verdict": v.verdict,
                 "measured": v.measured, "numbers": v.numbers}
            )  # fmt: skip
        return {
            "model": self.model,
            "n_layers": self.n_layers,
            "size": self.size,
            "claims": claims,
            "seconds": self.seconds,
            "rows": {k: [row_to_json(r) for r in rows] for k, rows in self.rows.items()},
        }


def verdicts_for(
    rows: dict[str, list[Row]], n_layers: int, media: set[str] | None = None
) -> dict[str, Verdict]:
    """Every claim's verdict from the rows of each data set (the rule of each claim)."""
    media = {"text"} if media is None else media
    out = {}
    for claim in CLAIMS:
        out[claim.key] = judge(claim, rows.get(claim.data), n_layers, media)
    return out


def model_media(model: Any) -> set[str]:
    """What the model takes: ``"text"``, plus ``"vision"``/``"audio"`` for its adapters."""
    adapters = getattr(model, "adapters", None) or {}
    media = {"text"}
    if "image" in adapters:
        media.add("vision")
    if "audio" in adapters:
        media.add("audio")
    return media


def _scan(model: Any, name: str, n_items: int | None, grids: bool) -> tuple[list[Row], Any]:
    import hublens
    from hublens.data import ParallelData

    data = ParallelData.load(name)
    if n_items is not None and n_items < len(data):
        data = data.subset(n_items, seed=0)
    result = hublens.semantic_hub_scan(model, data, progress=False)
    shown = []
    if grids:
        from hublens.views.examples import example_grids

        shown = [g.to_dict() for g in example_grids(model, data)]
    return result.rows, shown


def reproduce(
    model: Any,
    out: str | Path,
    *,
    size: str = "quick",
    data: list[str] | None = None,
    log: Any = print,
) -> Reproduction:
    """Run the paper's experiments on ``model`` and write ``reproduce.html`` / ``.json``.

    Args:
        model: A HubModel (or a name for :func:`hublens.load_model`).
        out: Output folder.
        size: ``"quick"`` (small seeded samples; minutes) or ``"full"`` (the default sizes).
        data: Only these data sets (and/or ``"trajectories"``); None: all of :data:`SIZES`.
        log: Where progress lines go (``print``; None for silence).

    Returns:
        The reproduction (also written as ``out/reproduce.json`` and ``out/reproduce.html``).

    Raises:
        ValueError: Unknown ``size`` or data name (before anything runs).

    Example:
        >>> r = reproduce("gemma-3-270m", "repro", size="quick")  # doctest: +SKIP
    """
    if size not in SIZES:
        raise ValueError(f"size={size!r}: choose 'quick' or 'full'.")
    names = list(SIZES[size]) if data is None else list(data)
    unknown = [n for n in names if n not in SIZES[size]]
    if unknown:
        raise ValueError(f"data={unknown}: choose from {', '.join(SIZES[size])}.")
    if not hasattr(model, "n_layers"):
        import hublens

        model = hublens.load_model(model)
    say = log or (lambda *_: None)
    media = model_media(model)
    rows: dict[str, list[Row]] = {}
    seconds: dict[str, float] = {}
    grids: list[dict[str, Any]] = []
    extras: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for name in names:
        started = time.perf_counter()
        n_items = SIZES[size][name]
        if name in MEDIA_STEPS and MEDIA_STEPS[name] not in media:
            say(f"reproduce: {name} skipped (not applicable: the model takes no "
                f"{MEDIA_STEPS[name]} input)")  # fmt: skip
            continue
        if name == "vision-patches":
            from hublens.analyses.patch_images import patch_grid_of
            from hublens.analyses.patch_labels import patch_label_scan

            if patch_grid_of(model) is None:
                skipped[name] = "the patch layout of this model's image positions is not known"
                say(f"reproduce: {name} skipped ({skipped[name]})")
                continue
            rows[name] = patch_label_scan(model, n_images=n_items or 48).rows
        elif name == "trajectories":
            from hublens.views.trajectories import arithmetic_trajectories, trajectory_figure

            traj = arithmetic_trajectories(model, max_items=n_items or 100, seed=0)
            rows[name] = traj.rows()
            extras["trajectory_figure"] = trajectory_figure(traj).to_json()
        else:
            wanted = name in ("multilingual-sentences", "arithmetic", "code-lists")
            rows[name], shown = _scan(model, name, n_items, grids=wanted)
            grids += shown
        seconds[name] = round(time.perf_counter() - started, 1)
        say(f"reproduce: {name} done in {seconds[name]:.1f} s")
    extras["lens_grids"] = grids
    verdicts = verdicts_for(rows, int(model.n_layers), media)
    for claim in CLAIMS:
        if claim.data in skipped and verdicts[claim.key].verdict == "not measured":
            verdicts[claim.key] = Verdict("not measured", skipped[claim.data])
    result = Reproduction(
        model=model.provenance.to_dict(),
        n_layers=int(model.n_layers),
        size=size,
        verdicts=verdicts,
        rows=rows,
        seconds=seconds,
        extras=extras,
    )
    write(result, out)
    return result


def write(result: Reproduction, out: str | Path) -> Path:
    """Write ``reproduce.json`` and ``reproduce.html`` into ``out``; returns the HTML path."""
    from hublens.atomic import write_text_atomic
    from hublens.reproduce.report import render

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    dump_json(result.to_dict(), folder / "reproduce.json")
    target = folder / "reproduce.html"
    write_text_atomic(target, render(result))
    return target


__all__ = [
    "MEDIA_STEPS",
    "SIZES",
    "model_media",
    "Claim",
    "Reproduction",
    "reproduce",
    "verdicts_for",
    "write",
]
