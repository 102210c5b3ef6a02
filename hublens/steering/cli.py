"""``hublens steer``: run the paper's steering interventions and write outcome tables + HTML.

Example:
    hublens steer arithmetic --model gemma-3-270m --out report/steering
    hublens steer all --model smollm2-135m --seeds 0,1,2 --out report/steering-smollm2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

INTERVENTIONS = ("arithmetic", "code", "sentiment")


def _numbers(flag: str, text: str | None) -> list[float] | None:
    if text is None:
        return None
    values = []
    for part in text.split(","):
        try:
            values.append(float(part))
        except ValueError:
            raise SystemExit(
                f"hublens: {flag} {text!r}: {part!r} is not a number; write e.g. {flag} 0,0.5,1"
            ) from None
    return values


def _ints(flag: str, text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise SystemExit(
            f"hublens: {flag} {text!r}: write comma-separated ints, e.g. 0,1,2"
        ) from None


def _options(args: argparse.Namespace, name: str) -> dict[str, Any]:
    options: dict[str, Any] = {"progress": not args.no_progress}
    if args.layer is not None:
        options["layer"] = args.layer
    strengths = _numbers("--strengths", args.strengths)
    if strengths is not None:
        options["strengths"] = strengths
    seeds = _ints("--seeds", args.seeds)
    if seeds is not None:
        options["seeds"] = seeds
    if args.n_items is not None:
        options["n_prompts" if name == "sentiment" else "n_items"] = args.n_items
    if args.max_new_tokens is not None:
        options["max_new_tokens"] = args.max_new_tokens
    if name == "sentiment" and args.languages:
        options["languages"] = args.languages.split(",")
    return options


def run_steer_command(args: argparse.Namespace) -> int:
    """Run the interventions named on the command line and save their results."""
    import torch

    import hublens
    from hublens.steering.interventions import RUNNERS as runners
    from hublens.steering.report import add_to_report, write_steering_html

    names = list(INTERVENTIONS) if args.intervention == "all" else [args.intervention]
    if args.into_report and not Path(args.into_report).is_file():
        raise SystemExit(f"hublens: --into-report {args.into_report!r}: no such file")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    options = {name: _options(args, name) for name in names}  # parse errors before loading
    from hublens.cli import _dtype

    model = hublens.load_model(args.model, dtype=_dtype(args.dtype))
    out = Path(args.out)
    results = []
    for name in names:
        started = time.perf_counter()
        result = runners[name](model, **options[name])
        seconds = time.perf_counter() - started
        result.provenance["seconds"] = round(seconds, 1)
        result.save(out)
        results.append(result)
        print(
            f"\n## {name} ({model.provenance.name}, layer {result.options['layer']}, "
            f"{seconds:.0f} s)\n"
        )
        print(result.to_markdown())
    report = write_steering_html(results, out / "report.html", title="Steering through the hub")
    print(f"\nwrote {out}/<intervention>.json/.csv/.html and {report}")
    if args.into_report:
        print(f"added the steering sections to {add_to_report(results, args.into_report)}")
    return 0


def add_steer_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``steer`` sub-command to the ``hublens`` parser."""
    steer = sub.add_parser(
        "steer",
        parents=[common],
        help="steering interventions (arithmetic, code, sentiment) with outcome tables",
    )
    steer.add_argument("intervention", choices=[*INTERVENTIONS, "all"])
    steer.add_argument("--out", default="report/steering", help="output folder")
    steer.add_argument("--layer", type=int, help="layer to steer (default per intervention)")
    steer.add_argument("--strengths", help="comma-separated strengths, e.g. 0,0.5,1")
    steer.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2")
    steer.add_argument("--n-items", type=int, help="items per seed (prompts per language)")
    steer.add_argument("--max-new-tokens", type=int)
    steer.add_argument("--languages", help="sentiment: comma-separated, default zh,es,fr")
    steer.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    steer.add_argument(
        "--into-report", help="also add the sections to this scan report.html (hublens scan)"
    )
    steer.add_argument("--no-progress", action="store_true")
    steer.set_defaults(func=run_steer_command)
