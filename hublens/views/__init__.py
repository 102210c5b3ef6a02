"""Views of hidden states for people: the token x layer lens grid, arithmetic trajectories.

Each view is a small dataclass of plain numbers and strings (JSON-ready, so a
:class:`~hublens.results.ScanResult` can carry it), a function that computes it from a model,
and a plotly figure. Text reaching HTML goes through :mod:`hublens.html_page`.
"""

from hublens.views.lens_grid import (
    LensGrid,
    grid_figure,
    grid_html,
    grids_section,
    lens_grid,
    write_grid_html,
)
from hublens.views.marks import TokenClass, script_marks
from hublens.views.trajectories import Trajectories, arithmetic_trajectories, trajectory_figure

__all__ = [
    "LensGrid",
    "TokenClass",
    "Trajectories",
    "arithmetic_trajectories",
    "grid_figure",
    "grid_html",
    "grids_section",
    "lens_grid",
    "script_marks",
    "trajectory_figure",
    "write_grid_html",
]
