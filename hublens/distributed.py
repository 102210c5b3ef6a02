"""Data-parallel scans: shard the items by rank, all-reduce the analyses' statistics.

A scan's analyses keep only streaming statistics (:class:`~hublens.stats.Stat`), and those
merge exactly: a :class:`~hublens.stats.MeanStat` by Chan et al.'s formula, sums by addition,
keyed statistics key by key (a group seen by only one rank is kept). So
``semantic_hub_scan(..., distributed=True)`` under ``torchrun`` gives every rank the items
``rank, rank + world, ...``, runs the usual engine on them, and after each pass all-reduces the
statistics the analysis declares (:meth:`hublens.analysis.Analysis.statistics`): every
rank's states are gathered and folded in rank order, so every rank ends with the same
result, equal to one process's up to float rounding. Nothing here knows an analysis's
attributes: the contract is the only interface.

Nothing is pickled between processes: states travel as JSON (the structure) plus safetensors
(the tensors) inside one uint8 tensor.

Example:
    A script ``scan.py``, started with ``torchrun --nproc-per-node 2 scan.py`` (gloo on CPUs,
    nccl on GPUs; every rank loads the model):

    >>> import torch.distributed as dist
    >>> result = semantic_hub_scan(model, data, distributed=True)  # doctest: +SKIP
    >>> if dist.get_rank() == 0:  # doctest: +SKIP
    ...     result.save("report/")
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from hublens.analysis import Analysis
from hublens.stats import Stat

# ------------------------------------------------------------------------------ process group


def ensure_process_group(backend: str | None = None) -> tuple[int, int]:
    """Join the default process group (from torchrun's environment) if not joined yet.

    Args:
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (GPUs); None picks nccl when CUDA is there.

    Returns:
        ``(rank, world_size)``.

    Raises:
        ValueError: torch.distributed is unavailable, or the process was not started by
            torchrun (no ``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` in the environment).
    """
    import torch.distributed as dist

    if not dist.is_available():
        raise ValueError("distributed=True: this torch build has no torch.distributed.")
    if not dist.is_initialized():
        keys = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
        missing = [k for k in keys if k not in os.environ]
        if missing:
            raise ValueError(
                f"distributed=True but {', '.join(missing)} is not set: start the script with "
                "`torchrun --nproc-per-node N script.py`, or call "
                "torch.distributed.init_process_group yourself first."
            )
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def shard_indices(n_items: int, rank: int, world_size: int) -> list[int]:
    """Items of one rank: ``rank, rank + world_size, ...`` (strided, so sizes differ by <= 1).

    Example:
        >>> shard_indices(5, 1, 2)
        [1, 3]
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank={rank}, world_size={world_size}: need 0 <= rank < world_size.")
    return list(range(rank, n_items, world_size))


# ------------------------------------------------------------------------- wire format


def _encode(value: Any, tensors: dict[str, Tensor]) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Tensor):
        ref = f"t{len(tensors)}"
        tensors[ref] = value.detach().to("cpu").contiguous().clone()
        return {"tensor": ref}
    if isinstance(value, bool):
        raise TypeError("Booleans are not statistic state; store a number.")
    if isinstance(value, (int, float)):
        return {"number": value}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return {"list": [_encode(v, tensors) for v in value]}
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, tensors) for k, v in value.items()}}
    raise TypeError(f"Cannot send a {type(value).__name__} between ranks.")


def _decode(node: Any, tensors: dict[str, Tensor]) -> Any:
    if node is None or isinstance(node, str):
        return node
    if "tensor" in node:
        return tensors[node["tensor"]]
    if "number" in node:
        return node["number"]
    if "tuple" in node:
        return tuple(_decode(v, tensors) for v in node["tuple"])
    if "list" in node:
        return [_decode(v, tensors) for v in node["list"]]
    return {k: _decode(v, tensors) for k, v in node["dict"].items()}


def encode_states(states: Sequence[dict[str, Any]]) -> bytes:
    """Serialise :meth:`Stat.state` dicts without pickle: length-prefixed JSON + safetensors."""
    from safetensors.torch import save

    tensors: dict[str, Tensor] = {}
    structure = json.dumps([_encode(dict(state), tensors) for state in states]).encode()
    return struct.pack("<Q", len(structure)) + structure + save(tensors)


def decode_states(payload: bytes) -> list[dict[str, Any]]:
    """Inverse of :func:`encode_states`."""
    from safetensors.torch import load

    (size,) = struct.unpack("<Q", payload[:8])
    structure = json.loads(payload[8 : 8 + size].decode())
    tensors = load(payload[8 + size :])
    return [_decode(node, tensors) for node in structure]


def all_gather_bytes(payload: bytes, group: Any = None) -> list[bytes]:
    """Every rank's payload, in rank order (a collective: every rank must call it)."""
    import torch.distributed as dist

    device = torch.device("cpu")
    if dist.get_backend(group) == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    data = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(device)
    world = dist.get_world_size(group)
    size = torch.tensor([data.numel()], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size, group=group)
    longest = int(max(int(s) for s in sizes))
    padded = torch.zeros(longest, dtype=torch.uint8, device=device)
    padded[: data.numel()] = data
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded, group=group)
    pairs = zip(gathered, sizes, strict=True)
    return [g[: int(s)].cpu().numpy().tobytes() for g, s in pairs]


# ----------------------------------------------------------------------------------- reducing


def fold_states_(stats: Sequence[Stat], per_rank: Sequence[Sequence[dict[str, Any]]]) -> None:
    """Replace each statistic by the merge, in rank order, of every rank's state of it.

    Args:
        stats: This rank's statistics (the same kinds, in the same order, on every rank).
        per_rank: ``per_rank[r][k]``: rank ``r``'s :meth:`Stat.state` of ``stats[k]``.

    Raises:
        RuntimeError: The ranks hold different numbers of statistics.
    """
    for r, states in enumerate(per_rank):
        if len(states) != len(stats):
            raise RuntimeError(
                f"rank {r} sent {len(states)} statistics but this rank has {len(stats)}: every "
                "rank must run the same analyses with the same options."
            )
    for k, stat in enumerate(stats):
        stat.load_state(per_rank[0][k])
        for states in per_rank[1:]:
            other = stat.empty()
            other.load_state(states[k])
            stat.merge(other)


def all_reduce_stats(stats: Sequence[Stat], group: Any = None) -> None:
    """All-reduce statistics in place across the ranks of ``group`` (one collective).

    Args:
        stats: This rank's statistics; every rank passes the same kinds in the same order.
        group: The process group (None: the default one).
    """
    payloads = all_gather_bytes(encode_states([s.state() for s in stats]), group)
    fold_states_(stats, [decode_states(p) for p in payloads])


def reduce_analysis(analysis: Analysis, *, group: Any = None) -> None:
    """All-reduce the statistics an analysis's last pass made (a collective).

    Args:
        analysis: The analysis, after a pass over this rank's shard.
        group: The process group (None: the default one).
    """
    all_reduce_stats(analysis.statistics(), group)
