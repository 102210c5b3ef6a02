"""Fitting the Jacobian lens in resumable slices, with a quality-versus-prompts curve.

The estimator is TransformerLens's (``JacobianLens.fit``: one forward and
``ceil(d_model / dim_batch)`` backward passes per prompt); this module only drives it: the
prompts are cut into slices of ``slice_size``, each finished slice is saved (fp32, a hublens
lens folder under ``work_dir``) and skipped on a rerun, and the slices are merged with
``JacobianLens.merge`` (the ``n_prompts``-weighted mean). After each slice the merged lens is
scored on held-out texts disjoint from the fit prompts: per layer, top-1 agreement with the
model's own next-token distribution and KL(final || lens), plus the agreement of the merged
lens with the previous merged lens (top-1 and the relative change of the matrices). That
curve, the logit lens's scores on the same rows, the corpus, sizes, time and the exact
command are recorded in the lens JSON's ``fit`` entry.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from hublens.hooks.lens import LogitLens
from hublens.lenses.artifact import LensArtifactError, read_config
from hublens.lenses.jacobian import JacobianLensView
from hublens.lenses.lens_quality import HeldOut, score

#: TL's default (16) leaves few source positions in short prompts; the fits here read 64-token
#: prompts, so 4 leading positions (BOS and the first words) are skipped.
SKIP_FIRST_POSITIONS = 4


def prompts_sha256(prompts: Sequence[str]) -> str:
    """sha256 of a list of prompts (JSON-encoded, order kept)."""
    return hashlib.sha256(json.dumps(list(prompts), ensure_ascii=False).encode()).hexdigest()


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values))


def _split(prompts: Sequence[str], slice_size: int) -> list[list[str]]:
    return [list(prompts[i : i + slice_size]) for i in range(0, len(prompts), slice_size)]


def _load_slice(folder: Path, model: Any, expected_sha: str) -> JacobianLensView | None:
    """A finished slice from an earlier run (None if absent); refuses one of other prompts."""
    if not (folder / "lens.json").is_file():
        return None
    recorded = read_config(folder).get("fit", {}).get("slice", {}).get("prompts_sha256")
    if recorded != expected_sha:
        raise LensArtifactError(
            f"{folder} was fitted on other prompts (sha256 {str(recorded)[:12]}…, now "
            f"{expected_sha[:12]}…): pass another work_dir or delete it to refit."
        )
    return JacobianLensView.load(folder, model)


def fit_jacobian(
    model: Any,
    prompts: Sequence[str],
    *,
    slice_size: int,
    out_dir: str | os.PathLike[str],
    heldout: Sequence[str],
    corpus: dict[str, Any],
    work_dir: str | os.PathLike[str] | None = None,
    max_seq_len: int = 64,
    dim_batch: int = 32,
    skip_first_positions: int = SKIP_FIRST_POSITIONS,
    command: str | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float16,
    time_budget_s: float | None = None,
    show_progress: bool = True,
    log: Callable[[str], None] = print,
) -> JacobianLensView:
    """Fit, slice by slice (resumable), merge and save a Jacobian lens for ``model``.

    Args:
        model: The HubModel (a raw TransformerBridge inside, as TL's fit requires).
        prompts: Fit prompts, in order (slice ``i`` is ``prompts[i*slice_size:...]``).
        slice_size: Prompts per slice (saved as one unit; a rerun skips finished ones).
        out_dir: The lens folder to write (safetensors + JSON).
        heldout: Held-out texts (disjoint from ``prompts``) for the quality curve.
        corpus: Corpus record: at least ``name``; also ``sha256``, language mix, how made.
        work_dir: Where slices are kept; default ``<out_dir>.slices`` beside ``out_dir``.
        max_seq_len: Prompts are truncated to this many tokens.
        dim_batch: Output dimensions per backward pass (memory vs speed; same result).
        skip_first_positions: Leading positions excluded from TL's source average and from
            the held-out scores.
        command: The exact command line, recorded in the JSON.
        seed: The corpus seed, recorded.
        dtype: Storage dtype of the final lens (slices are fp32).
        time_budget_s: Start no new slice once the wall time since the start plus the last
            slice's time would pass this; the lens is what was fitted (recorded).
        show_progress: TL's progress bar per slice.
        log: Where progress lines go.

    Returns:
        The merged lens, saved in ``out_dir``.

    Raises:
        ValueError: Bad sizes or empty inputs (before any forward pass).
    """
    from transformer_lens.tools.analysis import JacobianLens

    if isinstance(slice_size, bool) or not isinstance(slice_size, int) or slice_size < 1:
        raise ValueError(f"slice_size={slice_size!r}: pass a positive int.")
    if not prompts:
        raise ValueError("prompts is empty: pass the fit prompts.")
    if not heldout:
        raise ValueError("heldout is empty: pass a few texts disjoint from prompts.")
    if set(prompts) & set(heldout):
        raise ValueError("heldout shares texts with prompts; pass disjoint texts.")
    if not isinstance(corpus.get("name"), str) or not corpus["name"]:
        raise ValueError("corpus must hold a non-empty 'name' (recorded as TL's corpus id).")
    if max_seq_len <= skip_first_positions + 1:
        raise ValueError(
            f"max_seq_len={max_seq_len} leaves no source position after "
            f"skip_first_positions={skip_first_positions}; raise max_seq_len."
        )
    out = Path(out_dir)
    work = Path(work_dir) if work_dir is not None else out.with_name(out.name + ".slices")
    n_layers = int(model.n_layers)
    started = time.perf_counter()
    held = HeldOut.capture(
        model, heldout, max_seq_len=max_seq_len, skip_first_positions=skip_first_positions
    )
    logit_scores = score(LogitLens.from_model(model, final_norm=True), held, n_layers)
    log(f"logit lens held-out KL mean {_mean(logit_scores['kl']):.3f} ({held.n_texts} texts)")
    slices: list[Any] = []
    curve: list[dict[str, Any]] = []
    fit_seconds = 0.0
    previous: dict[str, Any] | None = None
    previous_tl: Any = None
    stopped_early = False
    last_slice_s = 0.0
    for index, chunk in enumerate(_split(prompts, slice_size)):
        elapsed = time.perf_counter() - started
        if slices and time_budget_s is not None and elapsed + last_slice_s > time_budget_s:
            log(f"time budget {time_budget_s:.0f} s reached after {len(slices)} slices; stop")
            stopped_early = True
            break
        folder = work / f"slice_{index:04d}"
        sha = prompts_sha256(chunk)
        view = _load_slice(folder, model, sha)
        if view is None:
            t0 = time.perf_counter()
            tl = JacobianLens.fit(
                model.bridge,
                chunk,
                corpus=corpus["name"],
                dim_batch=dim_batch,
                max_seq_len=max_seq_len,
                skip_first_positions=skip_first_positions,
                show_progress=show_progress,
            )
            seconds = time.perf_counter() - t0
            record = {"slice": {"index": index, "prompts_sha256": sha, "seconds": seconds}}
            view = JacobianLensView.from_tl(tl, model, fit=record)
            view.save(folder, dtype=torch.float32)
            last_slice_s = seconds
            log(f"slice {index}: {tl.n_prompts} prompts fitted in {seconds:.0f} s")
        else:
            log(f"slice {index}: already fitted ({folder}), skipped")
        fit_seconds += float(view.fit["slice"]["seconds"])
        slices.append(view.tl_lens)
        merged = JacobianLens.merge(slices) if len(slices) > 1 else slices[0]
        merged_view = JacobianLensView.from_tl(merged, model)
        scores = score(merged_view, held, n_layers)
        point: dict[str, Any] = {
            "n_slices": len(slices),
            "n_prompts": int(merged.n_prompts),
            "fit_seconds": fit_seconds,
            "kl": scores["kl"],
            "top1_agreement": scores["top1_agreement"],
            "mean_kl": _mean(scores["kl"]),
            "mean_top1_agreement": _mean(scores["top1_agreement"]),
        }
        if previous is not None:
            same = (scores["top1_ids"] == previous["top1_ids"]).double().mean(-1)
            change = [
                float(
                    (merged.jacobians[x] - previous_tl.jacobians[x]).norm()
                    / merged.jacobians[x].norm()
                )
                for x in merged.source_layers
            ]
            point["top1_agreement_with_previous"] = same.tolist()
            point["mean_top1_agreement_with_previous"] = float(same.mean())
            point["relative_change"] = change
            point["mean_relative_change"] = _mean(change)
        curve.append(point)
        log(
            f"after {merged.n_prompts} prompts: held-out KL {point['mean_kl']:.3f}, top-1 "
            f"agreement {point['mean_top1_agreement']:.3f}"
            + (
                f", vs previous fit top-1 {point['mean_top1_agreement_with_previous']:.3f}, "
                f"change {point['mean_relative_change']:.4f}"
                if previous is not None
                else ""
            )
        )
        previous, previous_tl = scores, merged
    final_scores = curve[-1]
    used = [p for chunk in _split(prompts, slice_size)[: len(slices)] for p in chunk]
    n_tokens = sum(min(int(model.bridge.to_tokens(p).shape[1]), max_seq_len) for p in used)
    fit = {
        "command": command,
        "corpus": dict(corpus),
        "seed": seed,
        "n_prompts": int(merged.n_prompts),
        "n_tokens": n_tokens,
        "slice_size": slice_size,
        "n_slices": len(slices),
        "n_prompts_planned": len(prompts),
        "prompts_sha256": prompts_sha256(used),
        "stopped_by_time_budget": stopped_early,
        "time_budget_s": time_budget_s,
        "max_seq_len": max_seq_len,
        "dim_batch": dim_batch,
        "skip_first_positions": skip_first_positions,
        "backward_passes_per_prompt": math.ceil(int(model.d_model) / dim_batch),
        "fit_seconds": fit_seconds,
        "wall_seconds": time.perf_counter() - started,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}",
        "heldout": {
            "n_texts": held.n_texts,
            "n_rows": int(logit_scores["n_rows"]),
            "sha256": prompts_sha256(heldout),
            "positions": f"{skip_first_positions}..{max_seq_len - 1}",
        },
        "heldout_kl": final_scores["kl"],
        "heldout_top1_agreement": final_scores["top1_agreement"],
        "logit_lens_heldout_kl": logit_scores["kl"],
        "logit_lens_heldout_top1_agreement": logit_scores["top1_agreement"],
        "quality_curve": curve,
    }
    lens = JacobianLensView.from_tl(merged, model, fit=fit)
    lens.save(out, dtype=dtype)
    log(f"saved {out} ({merged.n_prompts} prompts, {fit_seconds:.0f} s of fitting)")
    return lens


# ---------------------------------------------------------------------- command line
def add_arguments(parser: Any) -> None:
    """The Jacobian fit's own options, for ``hublens fit-lens`` (help prefixed ``jacobian:``)."""
    add = parser.add_argument
    add("--prompts", type=int, default=64, help="jacobian: fit prompts (default 64)")
    add("--slice-size", type=int, default=8, help="jacobian: prompts per saved slice")
    add("--max-seq-len", type=int, default=64, help="jacobian: tokens per prompt")
    add("--heldout", type=int, default=4, help="jacobian: held-out texts for the curve")
    add("--dim-batch", type=int, default=32, help="jacobian: outputs per backward pass")
    add(
        "--skip-first-positions",
        type=int,
        default=SKIP_FIRST_POSITIONS,
        help="jacobian: leading positions left out of the average",
    )
    add("--work-dir", default=None, help="jacobian: slice folder (default OUT.slices)")
    add("--fp32", action="store_true", help="jacobian: store fp32 (default fp16)")
    add("--time-budget-min", type=float, default=None, help="jacobian: start no slice after")


def _corpus_texts(args: Any, model: Any, n_texts: int) -> tuple[list[str], dict[str, Any]]:
    """The texts to fit on: ``--corpus FILE`` (one text per line) or the default corpus."""
    from hublens.lenses.corpus import Corpus, default_corpus

    seed = int(getattr(args, "seed", 0) or 0)
    path = getattr(args, "corpus", None)
    corpus = Corpus.from_file(path) if path else default_corpus(model, n_texts=n_texts, seed=seed)
    if len(corpus.texts) < n_texts:
        raise ValueError(
            f"the corpus {corpus.name!r} has {len(corpus.texts)} texts; --prompts + --heldout "
            f"need {n_texts}. Lower --prompts or pass a larger --corpus."
        )
    return list(corpus.texts[:n_texts]), corpus.record()


def split_heldout(texts: Sequence[str], n_heldout: int) -> tuple[list[str], list[str]]:
    """(fit prompts, held-out texts): every ``len // n_heldout``-th text is held out.

    Spacing the held-out texts keeps their language mix that of the corpus (the default
    corpus cycles through its languages).
    """
    step = max(1, len(texts) // max(1, n_heldout))
    held = [i for i in range(step - 1, len(texts), step)][:n_heldout]
    chosen = set(held)
    return [t for i, t in enumerate(texts) if i not in chosen], [texts[i] for i in held]


def fit_jacobian_command(args: Any) -> int:
    """``hublens fit-lens --kind jacobian``: fit (or ``--convert``) and save; exit status.

    Reads ``args.model``, ``args.out``, ``args.corpus``, ``args.seed``, ``args.convert`` and
    the options of :func:`add_arguments` (their defaults when absent).
    """
    import shlex
    import sys

    import hublens

    dtype_name = getattr(args, "dtype", None)
    if dtype_name:
        from hublens.cli import _dtype

        model = hublens.load_model(args.model, dtype=_dtype(dtype_name))
    else:
        model = hublens.load_model(args.model)
    if getattr(args, "out", None) is None:
        from hublens.lenses.store import default_out

        args.out = str(default_out(model, "jacobian"))
    convert = getattr(args, "convert", None)
    if convert:
        from hublens.lenses.jacobian import convert_pt

        lens = convert_pt(convert, model, args.out)
        print(f"converted {convert} -> {args.out} ({lens.tl_lens.n_prompts} prompts)")
        return 0
    budget = getattr(args, "time_budget_min", None)
    n_prompts = int(getattr(args, "prompts", 64))
    n_held = int(getattr(args, "heldout", 4))
    texts, record = _corpus_texts(args, model, n_prompts + n_held)
    fit_texts, held_texts = split_heldout(texts, n_held)
    prog = (
        ["hublens"]
        if Path(sys.argv[0]).name == "hublens"
        else ["python", "-m", "hublens.lenses.fit_jacobian"]
    )
    fit_jacobian(
        model,
        fit_texts,
        heldout=held_texts,
        slice_size=int(getattr(args, "slice_size", 8)),
        out_dir=args.out,
        corpus=record,
        work_dir=getattr(args, "work_dir", None),
        max_seq_len=int(getattr(args, "max_seq_len", 64)),
        dim_batch=int(getattr(args, "dim_batch", 32)),
        skip_first_positions=int(getattr(args, "skip_first_positions", SKIP_FIRST_POSITIONS)),
        command=shlex.join([*prog, *sys.argv[1:]]),
        seed=getattr(args, "seed", None),
        dtype=torch.float32 if getattr(args, "fp32", False) else torch.float16,
        time_budget_s=None if budget is None else 60.0 * float(budget),
        show_progress=not getattr(args, "no_progress", False),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hublens.lenses.fit_jacobian``: ``hublens fit-lens --kind jacobian``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hublens.lenses.fit_jacobian")
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default=None, help="lens folder (default: the cache)")
    parser.add_argument("--corpus", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--convert", default=None)
    add_arguments(parser)
    return fit_jacobian_command(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
