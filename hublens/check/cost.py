"""Cost: one scan-shaped forward (capture at every layer, last tokens) at the scan's batch size.

Reported, never judged (``pass`` with no threshold): median wall time of 3 forwards and the
peak memory above the start (CUDA: ``max_memory_allocated``; CPU on Linux: the resident set's
high-water mark, see :class:`hublens.bench.timing.PeakMemory`; None elsewhere).
"""

from __future__ import annotations

import statistics
import time

import torch

from hublens.check.context import CheckContext
from hublens.check.result import CheckResult
from hublens.hooks import ActivationStore, LastToken, capture_hooks, forward_until


def forward_cost(ctx: CheckContext) -> list[CheckResult]:
    """Seconds and peak memory of one forward of ``batch_size`` texts."""
    from hublens.bench.timing import PeakMemory

    model = ctx.model
    texts = (ctx.texts * ctx.batch_size)[: ctx.batch_size]
    batch = model.tokenize(texts)
    cuda = model.device.type == "cuda"

    def run() -> None:
        store = ActivationStore()
        hooks = capture_hooks(model, store, where=LastToken(batch.lengths))
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            forward_until(model, batch.ids, model.n_layers, attention_mask=batch.attention_mask)

    run()  # warm-up: pages memory-mapped weights in
    if cuda:
        torch.cuda.synchronize(model.device)
        torch.cuda.reset_peak_memory_stats(model.device)
        start_bytes = torch.cuda.memory_allocated(model.device)
    seconds = []
    with PeakMemory() as memory:
        for _ in range(3):
            started = time.perf_counter()
            run()
            if cuda:
                torch.cuda.synchronize(model.device)
            seconds.append(time.perf_counter() - started)
    peak = (
        torch.cuda.max_memory_allocated(model.device) - start_bytes if cuda else memory.peak_bytes
    )
    median = statistics.median(seconds)
    mb = "n/a" if peak is None else f"{peak / 1e6:.0f} MB"
    return [
        CheckResult(
            "cost.forward",
            "pass",
            median,
            None,
            "s",
            f"batch {ctx.batch_size} x {batch.ids.shape[1]} tokens, capture at all "
            f"{model.n_layers} layers: peak memory {mb}",
            {"peak_bytes": peak, "seconds": seconds, "tokens": int(batch.ids.numel())},
        )
    ]
