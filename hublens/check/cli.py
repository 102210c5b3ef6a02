"""``hublens check MODEL [--json PATH]``: print the table, write JSON, exit 1 on a failure."""

from __future__ import annotations

import argparse
from typing import Any


def _cmd_check(args: argparse.Namespace) -> int:
    import hublens
    from hublens.check import check

    if args.model_pos and args.model_explicit:
        raise SystemExit("hublens: check: give the model once (MODEL or --model)")
    name = args.model_pos or args.model_explicit or hublens.DEFAULT_MODEL
    from hublens.cli import _dtype

    model = hublens.load_model(name, dtype=_dtype(args.dtype))
    only = [n.strip() for n in args.only.split(",")] if args.only else None
    report = check(model, quick=args.quick, only=only, batch_size=args.batch_size)
    print(f"model: {model!r}")
    print(report.to_text())
    if args.json:
        print(f"wrote {report.save(args.json)}")
    return 0 if report.passed else 1


def add_check_parser(sub: Any) -> None:
    """Add ``hublens check`` to the CLI's subparsers."""
    parser = sub.add_parser(
        "check",
        help="numerics self-check of a model: lens, hidden states, tokens, padding, hooks",
        description="Run hublens's checks on MODEL; exit status 1 when one fails.",
    )
    parser.add_argument(
        "model_pos",
        nargs="?",
        metavar="MODEL",
        help="bundled name, HF name, local folder or .gguf file",
    )
    parser.add_argument("--model", dest="model_explicit", help="same as MODEL")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--json", help="also write the report to this JSON file")
    parser.add_argument("--quick", action="store_true", help="only the cheap subset")
    parser.add_argument("--only", help="comma-separated check names (hublens.check.CHECKS)")
    parser.add_argument("--batch-size", type=int, default=8, help="the scan's batch size")
    parser.set_defaults(func=_cmd_check)
