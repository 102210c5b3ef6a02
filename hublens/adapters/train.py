"""LLaVA stage-1 training of a projector: frozen encoder and LM, captioning loss.

Each example is a media key and its caption; the model reads ``"<media> caption"`` and the
loss is the cross-entropy of the caption tokens only (the media rows and BOS are context).
Encoder features are computed once (the encoder is frozen). Only the projector has
gradients; the LM's parameters are frozen for the run and restored afterwards.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from hublens.adapters.base import MultimodalBatch, MultimodalModel
from hublens.hooks import LogitLens, forward_until


@dataclass
class TrainingRecord:
    """What a training run did, stored with the projector.

    Attributes:
        modality: The adapter trained.
        steps: Optimiser steps.
        batch_size: Examples per step.
        lr: Peak learning rate.
        seed: The seed of example order and initialisation.
        n_examples: Training examples.
        loss_first: Mean caption loss of the first 10 steps (nats per token).
        loss_last: Mean caption loss of the last 10 steps.
        seconds: Wall time.
        cpu_seconds: CPU time of the process (all threads); on a shared machine the wall time
            grows with the load, the CPU time does not.
        losses: Loss per step.
        command: The command that produced it (filled in by the CLI).
    """

    modality: str
    steps: int
    batch_size: int
    lr: float
    seed: int
    n_examples: int
    loss_first: float = math.nan
    loss_last: float = math.nan
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    command: str = ""

    def to_dict(self, *, with_losses: bool = True) -> dict[str, Any]:
        """JSON-ready dictionary."""
        out = asdict(self)
        if not with_losses:
            out.pop("losses")
        return out


def _lookup(rows: dict[str, Tensor]) -> Any:
    def rows_of(modality: str, key: str) -> Tensor:
        return rows[key]

    return rows_of


def caption_loss(
    model: MultimodalModel, batch: MultimodalBatch, *, reduction: str = "mean"
) -> Tensor:
    """Cross-entropy of every token after the last media span of each row (the caption).

    Runs the LM to its last block only (:func:`~hublens.hooks.forward_until`), then reads the
    caption positions through the logit lens with the final norm (the model's own logits);
    the full-vocabulary logits of media positions are never built.

    Args:
        model: The multimodal model.
        batch: Rows ``"<media> caption"`` from ``model.tokenize``.
        reduction: ``"mean"`` over caption tokens, or ``"none"`` for one loss per token.
    """
    targets, rows, cols = [], [], []
    for r, spans in enumerate(batch.spans):
        if not spans:
            raise ValueError(f"batch row {r} has no media; a caption loss needs media first.")
        start, length = spans[-1].stop, int(batch.lengths[r])
        if start >= length:
            raise ValueError(f"batch row {r} has no caption tokens after its media.")
        for p in range(start, length):
            rows.append(r)
            cols.append(p - 1)
            targets.append(int(batch.ids[r, p]))
    with model.hooks(fwd_hooks=model.injection_hooks(batch)):
        # Gradients flow back through the injected rows to the projector.
        h = forward_until(model, batch.ids, model.n_layers, attention_mask=batch.attention_mask)
    lens = LogitLens.from_model(model, final_norm=True)
    logits = lens.logits(h[rows, cols])
    target = torch.tensor(targets, device=logits.device)
    return torch.nn.functional.cross_entropy(logits, target, reduction=reduction)


def train_projector(
    model: MultimodalModel,
    modality: str,
    examples: Sequence[tuple[str, str]],
    *,
    steps: int = 200,
    batch_size: int = 8,
    lr: float = 2e-3,
    seed: int = 0,
    template: str = "{marker} {caption}",
    progress: bool = True,
) -> TrainingRecord:
    """Train ``model.adapters[modality].projector`` in place on (media key, caption) pairs.

    Args:
        model: The multimodal model; every key must be registered with ``add_media``.
        modality: The adapter to train.
        examples: ``(key, caption)`` pairs.
        steps: Optimiser steps.
        batch_size: Examples per step.
        lr: Peak learning rate (AdamW, 10-step warm-up, cosine decay).
        seed: Seed of the example order.
        template: How an example reads; ``{marker}`` and ``{caption}`` are filled in.
        progress: Show a progress bar.

    Returns:
        The training record (losses per step).

    Raises:
        ValueError: Unknown modality or keys, no examples, or bad settings.

    Example:
        >>> record = train_projector(mm, "image", [("red-0", "red")], steps=5)  # doctest: +SKIP
    """
    if modality not in model.adapters:
        raise ValueError(f"modality={modality!r}: the model has {sorted(model.adapters)}.")
    if not examples:
        raise ValueError("examples=[]: pass (key, caption) pairs to train on.")
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise ValueError(f"steps={steps}, batch_size={batch_size}, lr={lr}: pass positive values.")
    if "{marker}" not in template or "{caption}" not in template:
        raise ValueError(f"template={template!r} must contain {{marker}} and {{caption}}.")
    adapter = model.adapters[modality]
    registry = model.media[modality]
    missing = [k for k, _ in examples if k not in registry]
    if missing:
        raise ValueError(
            f"examples use unregistered {modality} keys {missing[:5]}; add_media first."
        )
    started, cpu_started = time.perf_counter(), time.process_time()
    rng = random.Random(seed)
    features = {
        k: adapter.features(registry[k])
        for k in tqdm(
            sorted({k for k, _ in examples}), desc=f"encode {modality}", disable=not progress
        )
    }
    projector = adapter.projector
    lm_params = [p for p in model.bridge.parameters()]
    saved = [p.requires_grad for p in lm_params]
    for p in lm_params:
        p.requires_grad_(False)
    projector.train()
    for p in projector.parameters():
        p.requires_grad_(True)
    optimiser = torch.optim.AdamW(projector.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: min(1.0, (s + 1) / 10) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)),
    )
    record = TrainingRecord(modality, steps, batch_size, lr, seed, len(examples))
    order: list[int] = []
    try:
        bar = tqdm(range(steps), desc=f"train {modality} projector", disable=not progress)
        for _ in bar:
            if len(order) < batch_size:
                fresh = list(range(len(examples)))
                rng.shuffle(fresh)
                order += fresh
            chosen = [examples[i] for i in order[:batch_size]]
            del order[:batch_size]
            rows = {k: projector(features[k]) for k, _ in chosen}
            texts = [template.format(marker=f"<{modality}:{k}>", caption=c) for k, c in chosen]
            batch = model.tokenize(texts, media_rows=_lookup(rows))
            loss = caption_loss(model, batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            record.losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{record.losses[-1]:.3f}")
    finally:
        model._last = None
        projector.eval()
        for p, flag in zip(lm_params, saved, strict=True):
            p.requires_grad_(flag)
        model.clear_cache()
    record.loss_first = sum(record.losses[:10]) / len(record.losses[:10])
    record.loss_last = sum(record.losses[-10:]) / len(record.losses[-10:])
    record.seconds = time.perf_counter() - started
    record.cpu_seconds = time.process_time() - cpu_started
    return record
