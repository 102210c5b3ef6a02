"""The benchmark suite: every measurement of one model, side by side in one run."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from hublens.bench import forward, lens, scan, scan_names, steering
from hublens.bench.memory import scan_memory
from hublens.bench.models import load_pair
from hublens.bench.targets import evaluate
from hublens.bench.timing import measure, ratio

SECTIONS = ("forward", "lens", "scan", "memory", "steering")

#: The clock ratios use in the current run ("cpu" with one torch thread, else "wall").
_CLOCK = ["wall"]


@dataclass
class Settings:
    """Sizes and repeats of one run.

    Attributes:
        batch: Rows of the forward and lens benchmarks.
        seq: Tokens per row.
        warmup: Untimed calls per variant.
        repeats: Timed rounds (forward, lens, steering).
        scan_items: Items of the throughput scan (types en, zh, fr).
        scan_batch: Texts per forward in the scans.
        scan_repeats: Timed rounds of the scans.
        memory_sizes: Item counts of the memory runs (one fresh process each).
        memory_batch: Texts per forward in the memory runs.
        new_tokens: Tokens generated in the steering benchmark.
        threads: torch threads (1 is steadier on a shared machine).
        sections: Which measurements to run.
    """

    batch: int = 8
    seq: int = 32
    warmup: int = 1
    repeats: int = 5
    scan_items: int = 12
    scan_batch: int = 8
    scan_repeats: int = 3
    memory_sizes: Sequence[int] = (250, 1000, 4000)
    memory_batch: int = 32
    new_tokens: int = 16
    threads: int = 1
    sections: Sequence[str] = SECTIONS
    user_hooks: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def machine() -> dict[str, Any]:
    """The machine and software versions."""
    import transformers

    try:
        nnsight_version = importlib.metadata.version("nnsight")
    except importlib.metadata.PackageNotFoundError:
        nnsight_version = None
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "transformer_lens": importlib.metadata.version("transformer-lens"),
        "nnsight": nnsight_version,
        "load_average_at_start": load,
    }


def load_user_hooks(spec: str) -> Callable[[Any], list[tuple[str, Any]]]:
    """``"package.module:function"`` -> the function (called with the model, returns hooks)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(
            f"hooks={spec!r}: write MODULE:FUNCTION, e.g. my_hooks:make_hooks, where "
            "make_hooks(model) returns a list of (hook_name, hook_fn) pairs."
        )
    function = getattr(importlib.import_module(module_name), attr, None)
    if not callable(function):
        raise ValueError(f"hooks={spec!r}: {module_name} has no function {attr!r}.")
    return function  # type: ignore[no-any-return]


def _table(timings: dict[str, Any], base: str | None, key: str) -> dict[str, Any]:
    out = {}
    for name, timing in timings.items():
        row = timing.to_dict()
        if base is not None and base in timings:
            row[key] = ratio(timings, name, base, clock=_CLOCK[0])
        out[name] = row
    return out


def run_model(
    name: str, settings: Settings, *, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """All sections for one model.

    Args:
        name: Anything :func:`hublens.bench.models.load_pair` takes.
        settings: Sizes and repeats.
        log: Progress messages.

    Returns:
        The model's results, with ``targets``.
    """
    unknown = set(settings.sections) - set(SECTIONS)
    if unknown:
        raise ValueError(f"sections {sorted(unknown)}: choose from {', '.join(SECTIONS)}.")
    user_hooks = load_user_hooks(settings.user_hooks) if settings.user_hooks else None
    torch.set_num_threads(settings.threads)
    _CLOCK[0] = "cpu" if settings.threads == 1 else "wall"
    started = time.perf_counter()
    pair = load_pair(name)
    model, reference = pair.model, pair.reference
    log(f"[{name}] loaded in {time.perf_counter() - started:.1f} s: {model!r}")
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(
        5, min(model.d_vocab, 30000), (settings.batch, settings.seq), generator=generator
    )
    targets = [int(t) for t in model.word_token_ids("the")[:1] + model.word_token_ids("of")[:1]]
    section: dict[str, Any] = {"model": repr(model), "name": name, "ratio_clock": _CLOCK[0]}

    if "forward" in settings.sections:
        variants = forward.forward_variants(
            model, reference, ids, targets=targets, user_hooks=user_hooks
        )
        timings = measure(variants, warmup=settings.warmup, repeats=settings.repeats)
        table = _table(timings, forward.BRIDGE, "ratio_vs_bridge")
        if forward.HF in timings:
            for key in table:
                table[key]["ratio_vs_transformers"] = ratio(
                    timings, key, forward.HF, clock=_CLOCK[0]
                )
        section["forward"] = {
            "shape": [settings.batch, settings.seq],
            "variants": table,
            "agreement": forward.check_forward_agreement(model, reference, ids),
            "nnsight": forward.nnsight_available(),
        }
        log(f"[{name}] forward done")

    if "lens" in settings.sections:
        cache, rows = lens.lens_inputs(model, ids)
        variants, agreement = lens.lens_variants(model, cache, rows, targets)
        timings = measure(variants, warmup=settings.warmup, repeats=settings.repeats)
        table = _table(timings, lens.MATMUL, "ratio_vs_matmul")
        for key in table:
            table[key]["ratio_vs_hublens"] = ratio(timings, key, lens.HUBLENS, clock=_CLOCK[0])
        section["lens"] = {
            "rows": list(rows.shape[:2]),
            "targets": len(targets),
            "variants": table,
            "agreement": agreement,
        }
        del cache
        log(f"[{name}] lens done")

    if "scan" in settings.sections and reference is not None:
        section["scan"] = _scan_section(model, reference, settings)
        log(f"[{name}] scan done")

    if "steering" in settings.sections:
        variants = steering.steering_variants(
            model, "The capital of France is", max_new_tokens=settings.new_tokens
        )
        timings = measure(variants, warmup=settings.warmup, repeats=settings.repeats)
        section["steering"] = {
            "new_tokens": settings.new_tokens,
            "variants": _table(timings, steering.PLAIN, "ratio_vs_plain"),
        }
        log(f"[{name}] steering done")

    del pair, model, reference
    if "memory" in settings.sections:
        sizes = []
        for n in settings.memory_sizes:
            sizes.append(
                scan_memory(name, n, batch_size=settings.memory_batch, threads=settings.threads)
            )
            log(f"[{name}] memory {n} items: {sizes[-1]}")
        section["memory"] = {
            "analyses": "similarity (en-zh), all layers",
            "sizes": sizes,
            "batch_size": settings.memory_batch,
        }
    section["targets"] = [t.to_dict() for t in evaluate(section)]
    section["seconds"] = time.perf_counter() - started
    return section


def _scan_section(model: Any, reference: Any, settings: Settings) -> dict[str, Any]:
    data = scan.scan_data(settings.scan_items)
    b = settings.scan_batch
    ours = scan.hublens_scan(model, data, batch_size=b)
    variants = {
        scan_names.HUBLENS: lambda: scan.hublens_scan(model, data, batch_size=b),
        scan_names.REFERENCE: lambda: scan.reference_scan(model, reference, data, batch_size=b),
    }
    agreement = {
        "vs plain transformers": scan.max_difference(
            ours, scan.reference_scan(model, reference, data, batch_size=b)
        )
    }
    if forward.nnsight_available():
        lm = forward.nnsight_model(reference, model.tokenizer)
        variants[scan_names.NNSIGHT] = lambda: scan.reference_scan(
            model, reference, data, batch_size=b, lm=lm
        )
        agreement["vs nnsight"] = scan.max_difference(
            ours, scan.reference_scan(model, reference, data, batch_size=b, lm=lm)
        )
    timings = measure(variants, warmup=settings.warmup, repeats=settings.scan_repeats)
    table = _table(timings, scan_names.REFERENCE, "ratio_vs_reference")
    if scan_names.NNSIGHT in timings:
        for key in table:
            table[key]["ratio_vs_nnsight"] = ratio(
                timings, key, scan_names.NNSIGHT, clock=_CLOCK[0]
            )
    for key in table:
        seconds = table[key]["median_cpu_s" if _CLOCK[0] == "cpu" else "median_s"]
        table[key]["items_per_s"] = len(data) / seconds
    return {
        "items": len(data),
        "types": list(data.types),
        "texts": len(data) * len(data.types),
        "batch_size": b,
        "variants": table,
        "agreement_max_abs": agreement,
    }


def run_suite(
    models: Sequence[str],
    settings: Settings,
    *,
    command: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every model; returns the results document (machine, settings, per-model results)."""
    from dataclasses import asdict

    started = time.time()
    results: dict[str, Any] = {
        "command": command,
        "started_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "machine": machine(),
        "settings": {
            k: list(v) if isinstance(v, tuple) else v for k, v in asdict(settings).items()
        },
        "models": [run_model(name, settings, log=log) for name in models],
    }
    results["machine"]["load_average_at_end"] = os.getloadavg()[0]
    results["seconds"] = time.time() - started
    return results
