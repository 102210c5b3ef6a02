"""``hublens bench``: the benchmark suite on your own model (and hooks)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hublens.bench.suite import Settings


def add_bench_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the ``bench`` sub-command."""
    bench = sub.add_parser(
        "bench",
        parents=[common],
        help="time hooks, lens, scan, memory and steering against transformers/TL/nnsight",
    )
    bench.add_argument("--hooks", help="MODULE:FUNCTION returning your (hook_name, hook) list")
    bench.add_argument("--quick", action="store_true", help="few repeats, small memory sizes")
    bench.add_argument("--repeats", type=int, help="timed rounds (default 5, quick 3)")
    bench.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    bench.add_argument("--sections", help="comma-separated: forward,lens,scan,memory,steering")
    bench.add_argument("--memory-sizes", help="comma-separated item counts (default 250,1000,4000)")
    bench.add_argument("--json", help="write the results to this JSON file")
    bench.set_defaults(func=cmd_bench)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings of a run from the command line."""
    from hublens.bench.suite import SECTIONS, Settings

    settings = Settings(threads=args.threads, user_hooks=args.hooks)
    if args.quick:
        settings.repeats, settings.scan_repeats = 3, 2
        settings.scan_items, settings.memory_sizes = 8, (100, 400)
    if args.repeats is not None:
        if args.repeats < 1:
            raise ValueError(f"--repeats {args.repeats}: pass at least 1.")
        settings.repeats = args.repeats
    if args.sections:
        chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
        bad = [s for s in chosen if s not in SECTIONS]
        if bad:
            raise ValueError(f"--sections {args.sections!r}: choose from {', '.join(SECTIONS)}.")
        settings.sections = tuple(chosen)
    if args.memory_sizes:
        settings.memory_sizes = tuple(int(x) for x in args.memory_sizes.split(","))
    return settings


def cmd_bench(args: argparse.Namespace) -> int:
    """Run the suite on ``--model`` and print markdown tables."""
    from hublens.bench.report import to_markdown
    from hublens.bench.suite import run_suite

    if args.dtype != "float32":
        raise ValueError(f"--dtype {args.dtype}: the benchmark runs float32 only.")
    settings = settings_from_args(args)
    command = "hublens " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = run_suite(
        [args.model],
        settings,
        command=command,
        log=lambda m: print(m, file=sys.stderr),
    )
    print(to_markdown(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
