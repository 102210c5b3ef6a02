"""The whole benchmark suite in one command; results to JSON and docs/benchmarks.md.

Usage:
    python -m benchmarks.run                # bundled models (Gemma-3-270M, SmolLM2-135M)
    python -m benchmarks.run --quick        # tiny random models, about a minute
    python -m benchmarks.run --models gemma-3-270m --sections forward,lens
    python -m benchmarks.run --from-json benchmarks/results/suite.json   # re-render the docs

Writes benchmarks/results/suite.json (suite-quick.json with --quick) and, unless --no-docs,
replaces the measured part of the "Benchmark suite" section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from hublens.bench.report import to_markdown
from hublens.bench.suite import SECTIONS, Settings, run_suite

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- bench-suite:{kind}:start -->", "<!-- bench-suite:{kind}:end -->"


def update_docs(markdown: str, kind: str, path: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace the text between this kind's markers (appending the markers if absent)."""
    start, end = START.format(kind=kind), END.format(kind=kind)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    block = f"{start}\n{markdown}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def merge_update(old: dict, new: dict, sections: tuple[str, ...] | list[str]) -> dict:
    """Replace ``sections`` of the models measured again; targets re-evaluated; noted."""
    from hublens.bench.targets import evaluate

    by_name = {m["name"]: m for m in new["models"]}
    for model in old["models"]:
        fresh = by_name.get(model["name"])
        if fresh is None:
            continue
        for key in sections:
            if key in fresh:
                model[key] = fresh[key]
        model["targets"] = [t.to_dict() for t in evaluate(model)]
    old.setdefault("updates", []).append(
        {
            "command": new["command"],
            "started_utc": new["started_utc"],
            "sections": list(sections),
            "machine": new["machine"],
        }
    )
    return old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny random models")
    parser.add_argument("--models", nargs="+")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--from-json", help="only render this results file into the docs")
    parser.add_argument(
        "--update",
        action="store_true",
        help="re-measure --sections and replace them in the existing results file",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        kind = "quick" if Path(args.from_json).stem.endswith("quick") else "bundled"
        update_docs(to_markdown(results), kind)
        return 0
    settings = Settings(threads=args.threads, sections=tuple(args.sections.split(",")))
    if args.quick:
        models = args.models or ["tiny-llama", "tiny-gemma3"]
        settings.repeats, settings.scan_repeats, settings.scan_items = 5, 3, 8
    else:
        models = args.models or ["gemma-3-270m", "smollm2-135m"]
    if args.repeats:
        settings.repeats = args.repeats
    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    results = run_suite(
        models,
        settings,
        command=command.strip(),
        log=lambda m: print(m, file=sys.stderr, flush=True),
    )
    name = "suite-quick" if args.quick else "suite"
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    out.parent.mkdir(exist_ok=True)
    if args.update and out.exists():
        results = merge_update(json.loads(out.read_text()), results, settings.sections)
    out.write_text(json.dumps(results, indent=1))
    markdown = to_markdown(results)
    print(markdown)
    if not args.no_docs:
        update_docs(markdown, "quick" if args.quick else "bundled")
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
