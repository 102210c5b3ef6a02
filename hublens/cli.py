"""The ``hublens`` command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from hublens.bundled import BUNDLED, DEFAULT_MODEL
from hublens.methods import METHODS

#: The default translation prompt: French to Chinese, read in English in the middle layers.
DEFAULT_PROMPT = 'Français: "fleur" - 中文: "'
DEFAULT_WORDS = {"zh": "花", "en": "flower"}


def _parse_words(pairs: Sequence[str]) -> dict[str, str]:
    words = {}
    for pair in pairs:
        lang, sep, word = pair.partition("=")
        if not sep or not lang or not word:
            raise SystemExit(f"hublens: --word {pair!r}: write LANG=WORD, e.g. --word en=flower")
        words[lang] = word
    return words


def _cmd_lens(args: argparse.Namespace) -> int:
    import hublens
    from hublens.prompt_lens import translation_readouts
    from hublens.scan_lenses import parse_lens_option

    words = _parse_words(args.word) if args.word else DEFAULT_WORDS
    lens = parse_lens_option(args.lens) if args.lens else None  # checked before loading
    if lens is not None and args.no_final_norm:
        raise SystemExit("hublens: --no-final-norm with --lens: pass --lens logit-raw instead")
    started = time.perf_counter()
    model = hublens.load_model(args.model, dtype=_dtype(args.dtype))
    loaded = time.perf_counter() - started
    if args.grid:  # hublens lens --grid TEXT: the token x layer view as an HTML page
        from hublens.views.cli import run_grid

        return run_grid(model, args)
    readouts = translation_readouts(
        model, args.prompt, words, final_norm=not args.no_final_norm, lens=lens
    )
    print(f"model: {model!r} (loaded in {loaded:.1f} s)")
    print("\n\n".join(readout.to_text() for readout in readouts))
    if args.json:
        per_lens = [
            {
                "lens": r.lens,
                "lens_provenance": r.lens_provenance,
                "final_norm": r.final_norm,
                "probs": {lang: r.probs[:, i].tolist() for i, lang in enumerate(r.words)},
                "top_tokens": r.top_tokens,
            }
            for r in readouts
        ]
        readout = readouts[0]
        payload: dict[str, object] = {
            "provenance": model.provenance.to_dict(),
            "prompt": readout.prompt,
            "layers": readout.layers,
            "words": readout.words,
            "token_ids": readout.token_ids,
            **per_lens[0],
        }
        if len(per_lens) > 1:
            payload["lenses"] = per_lens
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, ensure_ascii=False, indent=1)
        print(f"wrote {args.json}")
    return 0


#: Short names accepted by ``--data``; ``multilingual`` scans both multilingual data sets
#: (sentence similarity and language probabilities, and the FR->ZH translation lens on words).
DATA_ALIASES = {
    "multilingual": ["multilingual-sentences", "multilingual-words"],
    "words": ["multilingual-words"],
    "sentences": ["multilingual-sentences"],
}


def _data_names(spec: str) -> list[str]:
    names: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            raise SystemExit(f"hublens: --data {spec!r}: empty name in the comma-separated list")
        names += DATA_ALIASES.get(part, [part])
    return list(dict.fromkeys(names))


def _cmd_scan(args: argparse.Namespace) -> int:
    import hublens
    from hublens.data import ParallelData
    from hublens.results import ScanResult

    if args.max_items is not None and args.max_items < 2:
        raise SystemExit("hublens: --max-items must be at least 2")
    names = None
    if args.analyses is not None:  # checked against the registry before loading anything
        from hublens.registry import resolve_analyses

        names = [n.strip() for n in args.analyses.split(",") if n.strip()]
        resolve_analyses(names)
    from hublens.scan_lenses import analyses_with_lenses, parse_lens_option, scan_lenses

    requested = parse_lens_option(args.lens)  # checked before loading anything
    datasets = []
    for name in _data_names(args.data):
        data = ParallelData.load(name)
        if args.max_items is not None:  # a seeded sample keeps every group represented
            data = data.subset(args.max_items, seed=args.seed)
        datasets.append(data)
    layers = None if args.layers is None else [int(x) for x in args.layers.split(",")]
    model = hublens.load_model(args.model, dtype=_dtype(args.dtype))
    lenses, lens_record = scan_lenses(model, requested, args.method)
    results = [
        hublens.semantic_hub_scan(
            model,
            data,
            analyses=analyses_with_lenses(data, names, args.method, lenses) or names,
            layers=layers,
            batch_size=args.batch_size,
            progress=not args.no_progress,
            method=args.method,
        )
        for data in datasets
    ]
    result = results[0] if len(results) == 1 else ScanResult.combine(results)
    result.provenance["lenses"] = lens_record
    if not args.no_grids:  # a few token x layer lens grids per data set, shown in the report
        from hublens.views.examples import example_grids

        grids = [g.to_dict() for data in datasets for g in example_grids(model, data)]
        result.extras["lens_grids"] = grids
    report = result.save(args.out)
    print(_summary(result))
    print(f"wrote {report.parent / 'result.json'}, result.csv and {report}")
    return 0


def _summary(result) -> str:
    """A short text table: each (analysis, metric, group) at its first, middle and last layer."""
    table = result.table()
    layers = sorted(table["layer"].unique())
    picks = sorted(
        {layers[0], layers[len(layers) // 2], layers[(2 * len(layers)) // 3], layers[-1]}
    )
    wide = table[table["layer"].isin(picks)].pivot_table(
        index=["analysis", "metric", "group", "lens"], columns="layer", values="mean", sort=False
    )
    wide.columns = [f"L{c}" for c in wide.columns]
    return wide.to_string(float_format=lambda v: f"{v:.4f}", max_rows=80)


def _cmd_info(args: argparse.Namespace) -> int:
    import hublens

    model = hublens.load_model(args.model, dtype=_dtype(args.dtype))
    facts = {
        "n_layers": model.n_layers,
        "d_model": model.d_model,
        "d_vocab": model.d_vocab,
        "prepend_bos": model.prepend_bos,
        "space_marker": model.convention.space_marker,
        "dominant_language": model.dominant_language,
        "provenance": model.provenance.to_dict(),
    }
    print(json.dumps(facts, ensure_ascii=False, indent=1))
    return 0


def _dtype(name: str):
    import torch

    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise SystemExit(f"hublens: --dtype {name!r}: choose one of {', '.join(dtypes)}")
    return dtypes[name]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``hublens`` command."""
    parser = argparse.ArgumentParser(prog="hublens", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"bundled name ({', '.join(BUNDLED)}), HF name, local folder or .gguf file",
    )
    common.add_argument("--dtype", default="float32")

    lens = sub.add_parser(
        "lens", parents=[common], help="logit-lens readout of a translation prompt, per layer"
    )
    lens.add_argument("--prompt", default=DEFAULT_PROMPT)
    lens.add_argument(
        "--word", action="append", help="LANG=WORD to read (repeatable); default zh=花 en=flower"
    )
    lens.add_argument("--no-final-norm", action="store_true", help="unembed raw residuals")
    lens.add_argument(
        "--lens",
        help="comma-separated lenses (logit, logit-raw, tuned, jacobian, a lens folder), read "
        "off one forward; default: logit (logit-raw with --no-final-norm)",
    )
    lens.add_argument("--json", help="also write the readout and provenance to this JSON file")
    from hublens.views.cli import add_grid_arguments  # --grid TEXT, --grid-out

    add_grid_arguments(lens)
    lens.set_defaults(func=_cmd_lens)

    scan = sub.add_parser(
        "scan", parents=[common], help="semantic hub scan of a data set, with an HTML report"
    )
    scan.add_argument(
        "--data",
        default="multilingual",
        help="built-in data set(s), comma-separated (multilingual = multilingual-sentences + "
        "multilingual-words, sentences, words, arithmetic, code-lists, code-args, semantics) or "
        "a .jsonl/.tsv/.csv file",
    )
    scan.add_argument(
        "--analyses",
        help="comma-separated analysis names (hublens.registry.analysis_names(), e.g. "
        "similarity,translation_lens); default: the paper's analyses for each data set",
    )
    scan.add_argument("--out", default="report", help="output folder")
    scan.add_argument("--layers", help="comma-separated layers (default: all)")
    scan.add_argument("--batch-size", type=int, default=8)
    scan.add_argument(
        "--max-items",
        type=int,
        help="scan a seeded random sample of N items (data-set order kept; see --seed)",
    )
    scan.add_argument("--seed", type=int, default=0, help="seed of the --max-items sample")
    scan.add_argument(
        "--method",
        choices=METHODS,
        default=None,
        help="whose method the analyses follow (docs/methods.md); default: hublens",
    )
    scan.add_argument(
        "--lens",
        help="comma-separated lenses of the lens analyses: logit, logit-raw, tuned, jacobian or "
        "a lens folder (e.g. logit,tuned); default: the method's logit lens, plus tuned when a "
        "tuned lens for the model is shipped or cached (never fitted during a scan)",
    )
    scan.add_argument("--no-progress", action="store_true")
    scan.add_argument(
        "--no-grids", action="store_true", help="leave the token x layer lens grids out of reports"
    )
    scan.set_defaults(func=_cmd_scan)

    from hublens.steering.cli import add_steer_parser

    add_steer_parser(sub, common)

    from hublens.patching.cli import add_patch_parser  # hublens patch

    add_patch_parser(sub, common)

    from hublens.reproduce.cli import add_reproduce_parser  # hublens reproduce

    add_reproduce_parser(sub, common)

    from hublens.check.cli import add_check_parser  # hublens check MODEL

    add_check_parser(sub)

    info = sub.add_parser("info", parents=[common], help="print a model's facts and provenance")
    info.set_defaults(func=_cmd_info)

    from hublens.bench.cli import add_bench_parser  # hublens bench

    add_bench_parser(sub, common)

    from hublens.adapters.cli import add_commands  # train-projector, multimodal

    add_commands(sub, common)

    from hublens.lenses.cli import add_fit_lens_parser  # hublens fit-lens

    add_fit_lens_parser(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``hublens`` command."""
    args = build_parser().parse_args(argv)
    from hublens.errors import HublensError

    try:
        return int(args.func(args))
    except (HublensError, ValueError) as exc:
        print(f"hublens: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
