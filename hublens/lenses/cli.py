"""``hublens fit-lens``: fit a tuned or Jacobian lens into a lens folder.

Example::

    hublens fit-lens --model gemma-3-270m --kind tuned \
        --out hublens/lenses/bundled/gemma-3-270m/tuned
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

#: Default size of the model-sampled corpus (texts).
DEFAULT_N_TEXTS = 100


def add_fit_lens_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``hublens fit-lens`` on the ``hublens`` sub-parsers."""
    parser = sub.add_parser(
        "fit-lens",
        parents=[common],
        help="fit a tuned or Jacobian lens (safetensors + JSON lens folder)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--kind", required=True, choices=("tuned", "jacobian"))
    parser.add_argument("--out", help="lens folder to write (default: the model's cache folder)")
    parser.add_argument("--corpus", help="UTF-8 file, one text per line (default: model samples)")
    parser.add_argument("--n-texts", type=int, default=DEFAULT_N_TEXTS, help="default corpus size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=None, help="tuned: optimiser steps")
    parser.add_argument(
        "--eval-rows", type=int, default=None, help="tuned: held-out rows evaluated (full vocab)"
    )
    parser.add_argument(
        "--vocabulary",
        choices=("auto", "full", "subset"),
        default="auto",
        help="tuned: training KL vocabulary (auto: subset above 16,384 tokens)",
    )
    parser.add_argument("--convert", help="jacobian: convert a published .pt (weights_only)")
    parser.add_argument("--no-progress", action="store_true")
    from hublens.lenses.fit_jacobian import add_arguments as add_jacobian_arguments

    add_jacobian_arguments(parser)
    parser.set_defaults(func=fit_lens_command)


def machine() -> str:
    """A short description of the machine a fit ran on."""
    cores = os.cpu_count()
    return f"{platform.machine()} {platform.system()}, {cores} CPU cores visible, no GPU used"


def fit_lens_command(args: argparse.Namespace) -> int:
    """Run ``hublens fit-lens``; returns the exit status."""
    if args.kind == "jacobian":
        from hublens.lenses.fit_jacobian import fit_jacobian_command

        return int(fit_jacobian_command(args))
    if args.convert:
        raise ValueError("--convert reads Jacobian .pt files; use it with --kind jacobian.")
    if args.n_texts < 2:
        raise ValueError(f"--n-texts {args.n_texts}: pass at least 2 (one is held out).")
    return _fit_tuned(args)


def _fit_tuned(args: argparse.Namespace) -> int:
    import hublens
    from hublens.cli import _dtype
    from hublens.lenses.corpus import Corpus, default_corpus
    from hublens.lenses.fit_tuned import TunedFitSettings, fit_tuned_lens, remove_checkpoint
    from hublens.lenses.store import default_out

    corpus_file = Corpus.from_file(args.corpus) if args.corpus else None  # checked first
    started = time.perf_counter()
    model = hublens.load_model(args.model, dtype=_dtype(args.dtype))
    out = Path(args.out) if args.out else default_out(model, "tuned")
    vocabulary = args.vocabulary
    if vocabulary == "auto":
        vocabulary = "subset" if model.d_vocab > 16_384 else "full"
    settings = TunedFitSettings(
        seed=args.seed,
        vocabulary=vocabulary,
        **({"steps": args.steps} if args.steps else {}),
        **({"max_eval_rows": args.eval_rows} if args.eval_rows else {}),
    )
    corpus_started = time.perf_counter()
    corpus = corpus_file or default_corpus(model, n_texts=args.n_texts, seed=args.seed)
    corpus_s = time.perf_counter() - corpus_started
    print(
        f"corpus {corpus.name}: {len(corpus.texts)} texts, sha256 {corpus.sha256[:12]}…",
        file=sys.stderr,
    )
    lens, record = fit_tuned_lens(
        model, corpus.texts, settings, checkpoint=out, progress=not args.no_progress
    )
    argv = getattr(args, "argv", None) or sys.argv[1:]
    lens.fit = {
        **record,
        "command": "hublens " + shlex.join(argv) if argv else None,
        "corpus": corpus.record(),
        "corpus_s": round(corpus_s, 1),
        "total_s": round(time.perf_counter() - started, 1),
        "machine": machine(),
        "torch_threads": _threads(),
        "model_provenance": model.provenance.to_dict(),
    }
    lens.save(out)
    remove_checkpoint(out)
    held = record["held_out"]
    print(f"wrote {out} ({lens.fit['total_s']:.0f} s)")
    print("layer  held-out KL tuned  logit")
    for layer, tuned, logit in zip(held["layers"], held["tuned"], held["logit"], strict=True):
        print(f"{layer:5d}  {tuned:17.4f}  {logit:.4f}")
    return 0


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())
