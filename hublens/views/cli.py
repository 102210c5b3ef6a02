"""``hublens lens --grid TEXT``: write the token x layer lens grid of one text as an HTML page."""

from __future__ import annotations

import argparse
import re
from typing import Any

from hublens.views.marks import TYPE_SCRIPTS


def guess_type(text: str) -> str | None:
    """The data type whose script marks the target tokens of ``text`` (CJK, hangul, ...)."""
    if re.search("[\u4e00-\u9fff]", text):
        return "zh"
    if re.search("[\uac00-\ud7af]", text):
        return "ko"
    if re.search("[\u0400-\u04ff]", text):
        return "ru"
    if re.fullmatch(r"[\d\s+*/=().-]+", text):
        return "numeral"
    return None


def add_grid_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--grid`` options of ``hublens lens``."""
    parser.add_argument("--grid", metavar="TEXT", help="write the token x layer grid of TEXT")
    parser.add_argument("--grid-out", default="lens_grid.html", help="HTML file of --grid")
    parser.add_argument(
        "--target-type",
        choices=sorted(TYPE_SCRIPTS),
        help="data type whose script marks target tokens (default: guessed from the text)",
    )


def run_grid(model: Any, args: argparse.Namespace) -> int:
    """Compute, write and summarise the grid of ``args.grid``."""
    from hublens.hooks.lens import LogitLens
    from hublens.views.lens_grid import lens_grid, write_grid_html
    from hublens.views.marks import script_marks

    target = args.target_type or guess_type(args.grid)
    lens = LogitLens.from_model(model, final_norm=not args.no_final_norm)
    grid = lens_grid(
        model, args.grid, lens=lens, marks=script_marks(model, target),
        label=f"{model.provenance.name}: {args.grid}",
    )  # fmt: skip
    path = write_grid_html(grid, args.grid_out)
    for name in grid.marks:
        share = ", ".join(f"{v:.2f}" for v in grid.mark_share(name))
        print(f"share of positions marked {name!r} per layer: {share}")
    print(f"wrote {path}")
    return 0
