"""``hublens train-projector`` and ``hublens multimodal``: the adapters' commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _examples(mm: Any, modality: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    """Register the generated training data and return (key, caption) pairs."""
    if modality == "image":
        from hublens.adapters.images import training_images

        items = training_images(seed=args.seed, per_colour=args.per_item)
        for item in items:
            mm.add_media("image", item.image, key=item.key)
        return [(item.key, item.caption) for item in items]
    from hublens.adapters.speech import training_clips

    clips = training_clips(seed=args.seed, per_word=args.per_item)
    for clip in clips:
        mm.add_media("audio", (clip.waveform, clip.sample_rate), key=clip.key)
    return [(clip.key, clip.label) for clip in clips]


def cmd_train(args: argparse.Namespace) -> int:
    """Train a projector (frozen encoder and LM, captioning loss) and save it."""
    import torch

    from hublens.adapters.instances import SHIPPED, load_audio_model, load_vision_model
    from hublens.adapters.train import train_projector

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    load = load_vision_model if args.modality == "image" else load_audio_model
    mm = load(args.model, projector=None)
    examples = _examples(mm, args.modality, args)
    record = train_projector(
        mm,
        args.modality,
        examples,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        progress=not args.no_progress,
    )
    record.command = "hublens " + " ".join(args.argv)
    out = Path(args.out) if args.out else SHIPPED[args.modality]
    projector: Any = mm.adapters[args.modality].projector
    projector.save(out, record=record.to_dict())
    summary = record.to_dict(with_losses=False)
    print(json.dumps(summary, indent=1))
    print(f"wrote {out}")
    return 0


def _layers(spec: str) -> list[int]:
    if "-" in spec:
        lo, hi = spec.split("-", 1)
        return list(range(int(lo), int(hi) + 1))
    return [int(x) for x in spec.split(",")]


def _summarise(result: Any, metrics: list[str]) -> str:
    table = result.table()
    table = table[table.metric.isin(metrics)]
    pivot = table.pivot_table(index="layer", columns=["metric", "group"], values="mean")
    return pivot.to_string(float_format=lambda v: f"{v:.3f}")


def cmd_multimodal(args: argparse.Namespace) -> int:
    """Run the vision or audio experiments and write tables and JSON."""
    import torch

    from hublens.adapters import experiments as ex
    from hublens.adapters.instances import load_audio_model, load_vision_model
    from hublens.results import ScanResult

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    projector = args.projector if args.projector else True
    progress = not args.no_progress
    payload: dict[str, Any] = {}
    if args.modality == "image":
        mm = load_vision_model(args.model, projector=projector)
        sim, lens = ex.vision_scan(mm, progress=progress)
    else:
        mm = load_audio_model(args.model, projector=projector)
        sim, lens = ex.audio_scan(mm, progress=progress)
    payload["projector_record"] = {
        k: {kk: vv for kk, vv in v.items() if kk != "losses"}
        for k, v in mm.projector_record.items()  # type: ignore[attr-defined]
    }
    result = ScanResult.combine([sim, lens])
    result.save(out)
    print(_summarise(sim, ["adjusted_cosine", "cosine"]))
    print(_summarise(lens, ["top1_label", "top1_baseline", "p_label", "p_other_label"]))
    if not args.skip_interventions:
        layers = _layers(args.layers)
        if args.modality == "image":
            records = ex.colour_replacement(
                mm,
                layers=layers,
                n_images=args.n_items,
                alpha=(args.alpha or [20.0])[0],
                progress=progress,
            )
        else:
            data = ex.audio_data(mm, seed=5000)
            records = ex.audio_steering(
                mm,
                data,
                layers=layers,
                alphas=args.alpha or [20.0],
                languages=args.languages.split(","),
            )
        payload["intervention"] = {"layers": layers, "records": records}
        import pandas as pd

        frame = pd.DataFrame(records)
        numeric = frame.select_dtypes(include=["number", "bool"]).astype(float)
        if args.modality == "image":
            print(frame.to_string(max_rows=60))
            print(numeric.mean().to_string(float_format=lambda v: f"{v:.3f}"))
        else:
            keys = [frame["language"], frame["alpha"], frame["condition"]]
            summary = numeric.drop(columns=["alpha"]).groupby(keys).mean()
            print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    payload["command"] = "hublens " + " ".join(args.argv)
    with open(out / "multimodal.json", "w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=1, default=str)
    print(f"wrote {out}/result.json, result.csv, report.html and multimodal.json")
    return 0


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add the adapters' subcommands to the ``hublens`` parser."""
    train = sub.add_parser(
        "train-projector",
        parents=[common],
        help="train the image or audio projector (LLaVA stage 1: frozen encoder and LM)",
    )
    train.add_argument("--modality", choices=["image", "audio"], required=True)
    train.add_argument("--steps", type=int, default=200)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--per-item", type=int, default=6, help="examples per colour (image) or per word (audio)"
    )
    train.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    train.add_argument("--out", help="output .safetensors (default: the shipped file)")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=cmd_train, argv=sys.argv[1:])

    multi = sub.add_parser(
        "multimodal",
        parents=[common],
        help="image/audio experiments: similarity, logit lens at media positions, interventions",
    )
    multi.add_argument("--modality", choices=["image", "audio"], required=True)
    multi.add_argument("--projector", help="projector .safetensors (default: the shipped one)")
    multi.add_argument("--out", default="report-multimodal")
    multi.add_argument("--layers", default="0-5", help="intervention layers: 'A-B' or 'a,b,c'")
    multi.add_argument("--n-items", type=int, default=20, help="images for the colour swap")
    multi.add_argument(
        "--alpha",
        type=float,
        action="append",
        help="steering scale s of s * (W_U[new] - W_U[old]) (repeatable for audio; default 20)",
    )
    multi.add_argument("--languages", default="en", help="audio steering languages, e.g. en,fr")
    multi.add_argument("--skip-interventions", action="store_true")
    multi.add_argument("--threads", type=int, default=0)
    multi.add_argument("--no-progress", action="store_true")
    multi.set_defaults(func=cmd_multimodal, argv=sys.argv[1:])
