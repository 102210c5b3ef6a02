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
        mm, args.modality, examples, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, progress=not args.no_progress,
    )
    record.command = "hublens " + " ".join(args.argv)
    out = Path(args.out) if args.out else SHIPPED[args.modality]
    mm.adapters[args.modality].projector.save(out, record=record.to_dict())
    summary = record.to_dict(with_losses=False)
    print(json.dumps(summary, indent=1))
    print(f"wrote {out}")
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
