"""Fit a tuned lens (Belrose et al.): KL to the final distribution, identity init, Adam.

The recipe: the residual rows of every layer are captured once (no gradient through the
model; stored fp16), the translators start at the identity (A, b zero), and Adam with a linear
warmup and cosine decay minimises ``sum_l KL(final || lens_l)`` over batches of rows, seeded.
Batch order and vocabulary samples depend only on ``(seed, step)``, so a fit resumed from a
checkpoint (saved every ``checkpoint_every`` steps as safetensors) is bitwise the same fit.

Training vocabulary (``TunedFitSettings.vocabulary``): ``"full"`` computes the exact KL over
every token. ``"subset"`` (for large vocabularies) computes it over the union of the batch's
final-distribution top-``top_k`` tokens, plus one tail bucket whose target mass is exact
(1 - their final mass) and whose lens mass is estimated from ``n_tail`` uniformly sampled other
tokens (scaled by the tail's size). The held-out KL is ALWAYS computed on the full vocabulary,
for the tuned and the logit lens, per layer; the choice is recorded in the lens's JSON.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from hublens.hooks.names import hook_name
from hublens.hooks.readout import Unembed
from hublens.lenses.artifact import ModelFingerprint
from hublens.lenses.tuned import TunedLens


@dataclass(frozen=True)
class TunedFitSettings:
    """Settings of a tuned-lens fit (recorded in the lens's JSON).

    Attributes:
        steps: Optimiser steps.
        batch_rows: Rows (token positions) per step; every layer reads the same rows.
        lr: Peak Adam learning rate.
        warmup: Fraction of steps of linear warmup, then cosine decay to 0.
        weight_decay: Adam (decoupled) weight decay on A and b.
        seed: Seed of the batch order and the vocabulary samples.
        held_out: Fraction of the texts held out (the last ones of a seeded shuffle).
        max_eval_rows: Held-out rows evaluated (full vocabulary), at most.
        max_tokens: Longest text, in tokens, read (longer texts are cut).
        vocabulary: ``"full"`` or ``"subset"`` (see the module docstring).
        top_k: Subset: top tokens per row of the final distribution in the batch's union.
        n_tail: Subset: sampled tail tokens per step.
        checkpoint_every: Save a resumable checkpoint every so many steps (0: never).
    """

    steps: int = 300
    batch_rows: int = 64
    lr: float = 1e-3
    warmup: float = 0.1
    weight_decay: float = 1e-3
    seed: int = 0
    held_out: float = 0.1
    max_eval_rows: int = 256
    max_tokens: int = 128
    vocabulary: str = "full"
    top_k: int = 16
    n_tail: int = 1024
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        for name in ("steps", "batch_rows", "max_eval_rows", "max_tokens", "top_k", "n_tail"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: pass a positive int.")
        if not 0 < self.held_out < 1:
            raise ValueError(f"held_out={self.held_out!r}: pass a fraction in (0, 1).")
        if self.vocabulary not in ("full", "subset"):
            raise ValueError(f"vocabulary={self.vocabulary!r}: choose 'full' or 'subset'.")


@dataclass
class Captured:
    """Residual rows of every layer at the corpus's token positions (BOS excluded).

    Attributes:
        states: ``(n_layers, rows, d_model)``, fp16, CPU.
        top_ids: Top-``top_k`` ids of the final distribution per row.
        final_lse: The final log-normaliser per row (fp32).
        text_of_row: Which text each row came from.
    """

    states: Tensor
    top_ids: Tensor
    final_lse: Tensor
    text_of_row: Tensor


@torch.no_grad()
def capture(
    model: Any, texts: Sequence[str], *, max_tokens: int, top_k: int, progress: bool = False
) -> Captured:
    """Run the model over ``texts`` once and keep every layer's rows (fp16) and final stats."""
    from tqdm.auto import tqdm

    n = int(model.n_layers)
    names = [hook_name(layer) for layer in range(n)]
    unembed = Unembed.from_model(model)
    states, tops, lses, owners = [], [], [], []
    rows = model.encode_rows(list(texts), max_tokens=None)
    for i, row in enumerate(tqdm(rows, desc="capture", unit="text", disable=not progress)):
        ids = torch.tensor([row[:max_tokens]], device=model.device)
        if ids.shape[1] < 2:
            continue
        _, cache = model.run_with_cache(ids, names_filter=lambda name: name in names)
        block = torch.stack([cache[name][0, 1:] for name in names])  # (n, pos, d)
        normed = unembed.prepare(block[-1], torch.ones(block.shape[1], dtype=torch.bool))
        logits = unembed.logits(normed)
        lses.append(torch.logsumexp(logits, -1).cpu())
        tops.append(logits.topk(min(top_k, logits.shape[-1]), -1).indices.cpu())
        states.append(block.to("cpu", torch.float16))
        owners.append(torch.full((block.shape[1],), i))
    if not states:
        raise ValueError("The corpus gave no token positions after BOS; give longer texts.")
    return Captured(torch.cat(states, 1), torch.cat(tops), torch.cat(lses), torch.cat(owners))


def split_rows(captured: Captured, held_out: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train rows, held-out rows): whole texts held out, chosen by a seeded shuffle."""
    owners = captured.text_of_row
    texts = torch.unique(owners)
    order = texts[torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed))]
    n_held = max(1, round(held_out * len(texts)))
    held = torch.isin(owners, order[:n_held])
    return torch.nonzero(~held).flatten(), torch.nonzero(held).flatten()


def _lr_factor(step: int, settings: TunedFitSettings) -> float:
    warm = max(1, round(settings.warmup * settings.steps))
    if step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, settings.steps - warm)
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _norm(unembed: Unembed, x: Tensor) -> Tensor:
    return unembed.prepare(x, torch.ones(x.shape[0], dtype=torch.bool))


def _logits_on(unembed: Unembed, x: Tensor, ids: Tensor | None) -> Tensor:
    weight = unembed.weight.detach() if ids is None else unembed.weight.detach()[ids]
    logits = x @ weight.float().T
    if unembed.bias is not None:
        bias = unembed.bias.detach()
        logits = logits + (bias if ids is None else bias[ids]).float()
    if unembed.softcap is not None:
        logits = torch.tanh(logits / unembed.softcap) * unembed.softcap
    return logits


def _translate(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """(L, rows, d) -> (L, rows, d): ``h + h @ A_l.T + b_l`` per layer."""
    return h + torch.bmm(h, weight.transpose(1, 2)) + bias[:, None, :]


def step_loss(
    unembed: Unembed,
    h: Float[Tensor, "n_fitted rows d_model"],
    h_last: Float[Tensor, "rows d_model"],
    final_lse: Float[Tensor, " rows"],
    top_ids: Tensor,
    weight: Tensor,
    bias: Tensor,
    settings: TunedFitSettings,
    generator: torch.Generator,
) -> Tensor:
    """Sum over layers of the mean KL(final || tuned lens) of one batch."""
    n_fit, rows, d = h.shape
    x = _norm(unembed, _translate(h, weight, bias).reshape(-1, d))
    target_x = _norm(unembed, h_last)
    if settings.vocabulary == "full":
        target = torch.log_softmax(_logits_on(unembed, target_x, None), -1)
        lens = torch.log_softmax(_logits_on(unembed, x, None), -1).reshape(n_fit, rows, -1)
        return (target.exp() * (target - lens)).sum(-1).mean(-1).sum()
    vocab = unembed.d_vocab
    subset = torch.unique(top_ids.flatten())
    tail = torch.randint(0, vocab, (settings.n_tail,), generator=generator)
    tail = tail[~torch.isin(tail, subset)]
    n_rest = vocab - subset.numel()
    t_logits = _logits_on(unembed, target_x, subset)
    log_p = t_logits - final_lse[:, None]
    p_tail = (1 - log_p.exp().sum(-1)).clamp_min(1e-12)
    ids = torch.cat([subset, tail])
    logits = _logits_on(unembed, x, ids).reshape(n_fit, rows, -1)
    on_s, on_tail = logits[..., : subset.numel()], logits[..., subset.numel() :]
    lse_tail = torch.logsumexp(on_tail, -1) + math.log(n_rest / max(1, tail.numel()))
    lse = torch.logaddexp(torch.logsumexp(on_s, -1), lse_tail)
    log_q, log_q_tail = on_s - lse[..., None], lse_tail - lse
    kl = (log_p.exp() * (log_p - log_q)).sum(-1) + p_tail * (p_tail.log() - log_q_tail)
    return kl.mean(-1).sum()


@torch.no_grad()
def held_out_kl(
    lens: TunedLens, states: Tensor, *, chunk: int = 32
) -> tuple[list[float], list[float]]:
    """Mean full-vocabulary KL(final || lens) per layer: (tuned lens, logit lens)."""
    unembed = lens.unembed
    n = states.shape[0]
    tuned, logit = torch.zeros(n), torch.zeros(n)
    for start in range(0, states.shape[1], chunk):
        h = states[:, start : start + chunk].float().to(unembed.weight.device)
        final = torch.log_softmax(_logits_on(unembed, _norm(unembed, h[-1]), None), -1)
        p = final.exp()
        for layer in range(n):
            for out, x in ((logit, h[layer]), (tuned, lens.transform(h[layer], layer))):
                q = torch.log_softmax(_logits_on(unembed, _norm(unembed, x), None), -1)
                out[layer] += float((p * (final - q)).sum())
    rows = states.shape[1]
    return (tuned / rows).tolist(), (logit / rows).tolist()


def _checkpoint_paths(out: Path) -> tuple[Path, Path]:
    base = f".{out.name}.checkpoint"
    return out.parent / f"{base}.safetensors", out.parent / f"{base}.json"


def _save_checkpoint(out: Path, step: int, tensors: dict[str, Tensor], key: str) -> None:
    from safetensors.torch import save_file

    from hublens.atomic import atomic_path, write_text_atomic

    tensors_path, meta_path = _checkpoint_paths(out)
    tensors_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(tensors_path) as tmp:
        save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(tmp))
    write_text_atomic(meta_path, json.dumps({"step": step, "key": key}))


def _load_checkpoint(out: Path, key: str) -> tuple[int, dict[str, Tensor]] | None:
    from safetensors.torch import load_file

    tensors_path, meta_path = _checkpoint_paths(out)
    if not (tensors_path.is_file() and meta_path.is_file()):
        return None
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("key") != key:
        return None  # another fit's checkpoint (other settings, corpus or model)
    return int(meta["step"]), load_file(str(tensors_path))


def remove_checkpoint(out: Path) -> None:
    """Delete the checkpoint of the fit for lens folder ``out`` (after the lens is saved)."""
    for path in _checkpoint_paths(out):
        path.unlink(missing_ok=True)


def fit_tuned_lens(
    model: Any,
    texts: Sequence[str],
    settings: TunedFitSettings,
    *,
    checkpoint: Path | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> tuple[TunedLens, dict[str, Any]]:
    """Fit a tuned lens on ``texts``; returns it and the fit record (held-out KL per layer).

    Args:
        model: The HubModel.
        texts: The corpus texts.
        settings: The fit settings.
        checkpoint: The lens folder the fit is for: its checkpoint sits beside it
            (``.<name>.checkpoint.*``), is resumed from when it matches, and is removed at the end.
        stop_after: Stop after this many steps of this run (a test of resuming).
        progress: Show a progress bar over steps.

    Returns:
        ``(lens, record)``; the lens's translators are rounded to fp16, as saved.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    captured = capture(
        model, texts, max_tokens=settings.max_tokens, top_k=settings.top_k, progress=progress
    )
    capture_s = time.perf_counter() - started
    train, held = split_rows(captured, settings.held_out, settings.seed)
    if train.numel() == 0:
        raise ValueError("Every text was held out; give more texts or a smaller held_out.")
    unembed = Unembed.from_model(model)
    n, d = int(model.n_layers), int(model.d_model)
    weight = torch.zeros(n - 1, d, d, requires_grad=True)
    bias = torch.zeros(n - 1, d, requires_grad=True)
    optimiser = torch.optim.AdamW(
        [weight, bias], lr=settings.lr, weight_decay=settings.weight_decay
    )
    key = json.dumps([asdict(settings), len(texts), sum(map(len, texts)), n, d])
    start = 0
    loaded = None if checkpoint is None else _load_checkpoint(checkpoint, key)
    resumed = loaded is not None
    if loaded is not None:
        start, saved = loaded
        with torch.no_grad():
            weight.copy_(saved["weight"])
            bias.copy_(saved["bias"])
        if start > 0:
            for p, name in ((weight, "weight"), (bias, "bias")):
                optimiser.state[p] = {
                    "step": saved[f"{name}.step"],
                    "exp_avg": saved[f"{name}.exp_avg"],
                    "exp_avg_sq": saved[f"{name}.exp_avg_sq"],
                }
    norm_params = [
        p for p in (unembed.norm.parameters() if unembed.norm else []) if p.requires_grad
    ]
    for p in norm_params:
        p.requires_grad_(False)
    losses: list[float] = []
    end = settings.steps if stop_after is None else min(settings.steps, start + stop_after)
    try:
        bar = tqdm(range(start, end), desc="fit tuned lens", unit="step", disable=not progress)
        for step in bar:
            gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + step)
            pick = train[torch.randint(0, train.numel(), (settings.batch_rows,), generator=gen)]
            block = captured.states[:, pick].float()
            for group in optimiser.param_groups:
                group["lr"] = settings.lr * _lr_factor(step, settings)
            loss = step_loss(
                unembed, block[:-1], block[-1], captured.final_lse[pick],
                captured.top_ids[pick], weight, bias, settings, gen,
            )  # fmt: skip
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            done = step + 1
            if (
                checkpoint is not None
                and settings.checkpoint_every
                and (done % settings.checkpoint_every == 0 or done == end)
            ):
                tensors = {"weight": weight, "bias": bias}
                for p, name in ((weight, "weight"), (bias, "bias")):
                    for field in ("step", "exp_avg", "exp_avg_sq"):
                        tensors[f"{name}.{field}"] = optimiser.state[p][field]
                _save_checkpoint(checkpoint, done, tensors, key)
    finally:
        for p in norm_params:
            p.requires_grad_(True)
    fingerprint = ModelFingerprint.from_model(model)
    lens = TunedLens(
        unembed,
        weight.detach().half().float(),
        bias.detach().half().float(),
        fingerprint=fingerprint,
    )
    fit_s = time.perf_counter() - started
    eval_rows = held[: settings.max_eval_rows]
    tuned_kl, logit_kl = held_out_kl(lens, captured.states[:, eval_rows])
    eval_s = time.perf_counter() - started - fit_s
    record = {
        "settings": asdict(settings),
        "seed": settings.seed,
        "recipe": "tuned lens (Belrose et al. 2023): identity init, sum over layers of "
        "KL(final || lens), AdamW, linear warmup + cosine decay, residuals captured once",
        "training_vocabulary": (
            "full vocabulary"
            if settings.vocabulary == "full"
            else f"subset: union of the batch's final top-{settings.top_k} tokens + one tail "
            f"bucket (exact target mass; lens mass estimated from {settings.n_tail} sampled "
            "tail tokens); held-out KL on the full vocabulary"
        ),
        "n_texts": len(texts),
        "n_rows": int(captured.states.shape[1]),
        "n_train_tokens": int(train.numel()),
        "n_held_out_tokens": int(held.numel()),
        "n_eval_tokens": int(eval_rows.numel()),
        "steps_done": end,
        "resumed_from_step": start if resumed else None,
        "loss_first_last": [losses[0], losses[-1]] if losses else None,
        "capture_s": round(capture_s, 1),
        "fit_s": round(fit_s, 1),
        "held_out_eval_s": round(eval_s, 1),
        "held_out": {
            "what": "mean KL(final || lens) in nats per held-out token, full vocabulary",
            "layers": list(range(n)),
            "tuned": [round(v, 5) for v in tuned_kl],
            "logit": [round(v, 5) for v in logit_kl],
        },
    }
    lens.fit = record
    return lens, record
