"""``hublens patch`` and ``hublens patchscope``: concept patching and the patchscope readout.

``--source A[:B]`` is the source prompt (input A, output B, default B = en) and
``--target [C:]D`` the target prompt (output D; input C defaults to the first of de, es, fr, ja
that is free). Everything is checked before the model loads where it can be, and before any
forward otherwise.

Example:
    hublens patch --model gemma-3-270m --source fr --target zh --out report/patch-fr-zh
    hublens patch --source ja:en --target de:zh --layers 4,8,12 --span 2 --n-items 40
    hublens patchscope --model gemma-3-270m --source fr --target zh --generate 4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def _pair(flag: str, text: str, *, first_is_input: bool) -> tuple[str | None, str | None]:
    parts = text.split(":")
    if len(parts) > 2 or not all(parts):
        raise SystemExit(f"hublens: {flag} {text!r}: write LANG or IN:OUT, e.g. {flag} fr:en")
    if len(parts) == 2:
        return parts[0], parts[1]
    return (parts[0], None) if first_is_input else (None, parts[0])


def _layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise SystemExit(f"hublens: --layers {text!r}: write comma-separated ints") from None


def patching_options(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`~hublens.patching.ConceptPatching` options of the command line."""
    a, b = _pair("--source", args.source, first_is_input=True)
    c, d = _pair("--target", args.target, first_is_input=False)
    options: dict[str, Any] = {"source": a, "target": d, "progress": not args.no_progress}
    if b is not None:
        options["source_out"] = b
    if c is not None:
        options["target_in"] = c
    options["layers"] = _layers(args.layers)
    for key in ("span", "n_items", "few_shot", "batch_size", "seed", "position"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.mean_sources is not None:
        options["mean_sources"] = [x for x in args.mean_sources.split(",") if x]
    if args.no_controls:
        options["controls"] = False
    return options


def run_patch_command(args: argparse.Namespace) -> int:
    """Run concept patching and write result.json, result.csv and report.html."""
    import torch

    import hublens
    from hublens.cli import _dtype
    from hublens.data import ParallelData
    from hublens.patching import ConceptPatching

    experiment = ConceptPatching(**patching_options(args))  # parse errors before loading
    data = ParallelData.load(args.data)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = hublens.load_model(args.model, dtype=_dtype(args.dtype))
    print(f"model: {model!r} (loaded in {time.perf_counter() - started:.1f} s)")
    result = experiment.run(model, data)
    return _write(result, Path(args.out))


def _write(result: Any, out: Path) -> int:
    """Save ``result`` under ``out`` and print its summary and what was written."""
    from hublens.cli import _summary  # the cli imports this module: import at call time

    report = result.save(out)
    print(_summary(result))
    print(f"{result.provenance['seconds']} s; wrote {out / 'result.json'}, result.csv and {report}")
    return 0


def add_patch_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``patch`` sub-command to the ``hublens`` parser."""
    patch = sub.add_parser(
        "patch",
        parents=[common],
        help="concept patching across translation prompts (Dumas et al.), with controls",
    )
    patch.add_argument("--source", default="fr", help="source prompt A or A:B (default B = en)")
    patch.add_argument("--target", default="zh", help="target prompt D or C:D")
    patch.add_argument(
        "--data", default="multilingual-words", help="word table: built-in name or a file"
    )
    patch.add_argument("--out", default="report/patch", help="output folder")
    patch.add_argument("--layers", help="comma-separated first patched layers (default: all)")
    patch.add_argument("--span", type=int, help="consecutive layers patched together")
    patch.add_argument("--n-items", type=int, help="word pairs (default 24)")
    patch.add_argument("--few-shot", type=int, help="demonstrations per prompt (default 2)")
    patch.add_argument("--position", type=int, help="patch position, -1 = last token")
    patch.add_argument(
        "--mean-sources", help="input languages of the mean variant, comma-separated ('' = skip)"
    )
    patch.add_argument("--no-controls", action="store_true", help="skip unrelated and placebo")
    patch.add_argument("--batch-size", type=int)
    patch.add_argument("--seed", type=int)
    patch.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    patch.add_argument("--no-progress", action="store_true")
    patch.set_defaults(func=run_patch_command)
    add_patchscope_parser(sub, common)  # hublens patchscope


def run_patchscope_command(args: argparse.Namespace) -> int:
    """Run the patchscope readout of translation prompts; write JSON, CSV and the report."""
    import torch

    import hublens
    from hublens.cli import _dtype
    from hublens.data import ParallelData
    from hublens.patching.generate import patchscope_generate
    from hublens.patching.patchscope_translation import TranslationPatchscope

    options: dict[str, Any] = {"source": args.source, "target": args.target}
    options["latent"] = None if args.latent == "" else args.latent
    options["layers"] = _layers(args.layers)
    for key in ("n_items", "few_shot", "batch_size", "seed", "into", "identity", "placeholder"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    experiment = TranslationPatchscope(**options)
    data = ParallelData.load(args.data)
    experiment.prompts(data)  # language and item errors before the model loads
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    model = hublens.load_model(args.model, dtype=_dtype(args.dtype))
    print(f"model: {model!r} (loaded in {time.perf_counter() - started:.1f} s)")
    result = experiment.run(model, data)
    if args.generate:
        _, prompts, _ = experiment.prompts(data)
        decoded = patchscope_generate(
            model,
            prompts[0],
            layers=experiment.layers,
            identity=experiment.identity,
            placeholder=experiment.placeholder,
            into=experiment.into,
            max_new_tokens=args.generate,
        )
        lines = [f"greedy L{layer}: {text!r}" for layer, text in decoded.items()]
        for examples in result.examples.values():
            examples.extend(lines)
        print("\n".join(lines))
    return _write(result, Path(args.out))


def add_patchscope_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the ``patchscope`` sub-command to the ``hublens`` parser."""
    scope = sub.add_parser(
        "patchscope",
        parents=[common],
        help="decode translation prompts' states per layer through an identity prompt",
    )
    scope.add_argument("--source", default="fr", help="the prompts' input language")
    scope.add_argument("--target", default="zh", help="the prompts' output language")
    scope.add_argument("--latent", default="en", help="extra reading ('' = none)")
    scope.add_argument(
        "--data", default="multilingual-words", help="word table: built-in name or a file"
    )
    scope.add_argument("--out", default="report/patchscope", help="output folder")
    scope.add_argument("--layers", help="comma-separated source layers (default: all)")
    scope.add_argument("--into", type=int, help="patch every state into this layer")
    scope.add_argument("--identity", help="identity prompt holding the placeholder once")
    scope.add_argument("--placeholder", help="the placeholder (default '?')")
    scope.add_argument("--n-items", type=int, help="prompts (default 24)")
    scope.add_argument("--few-shot", type=int, help="demonstrations per prompt (default 2)")
    scope.add_argument(
        "--generate", type=int, default=0, help="also decode N tokens greedily for item 0"
    )
    scope.add_argument("--batch-size", type=int)
    scope.add_argument("--seed", type=int)
    scope.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    scope.set_defaults(func=run_patchscope_command)
