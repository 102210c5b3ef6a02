"""Data-parallel scans: shard the items by rank, reduce the analyses' streaming statistics.

A scan's analyses keep only streaming statistics, and those merge exactly: a
:class:`~hublens.analyses.stats.MeanStat` by Chan et al.'s formula, running sums by addition.
So ``semantic_hub_scan(..., distributed=True)`` under ``torchrun`` gives every rank the items
``rank, rank + world, ...``, runs the usual engine on them, and before each analysis moves to
its next pass or finalizes, gathers every rank's statistics and folds them in rank order. Every
rank ends with the same result, equal to one process's up to float rounding.

What is reduced, per analysis:

* every attribute holding a mergeable statistic (:class:`MeanStat` or the similarity's
  ``_PairSums``), directly or as the values of a dict (keys are united across ranks: a group
  seen by only one rank is kept) -- after the analysis's last pass;
* the attributes an analysis lists in ``summed_state`` (a property or attribute naming
  attributes that hold additive sums of the current pass: tensors, numbers, or dicts of them)
  -- after every pass. Analyses with more than one pass must declare it, since their second
  pass needs the first pass's data-wide sums.

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

import dataclasses
import json
import os
import struct
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from hublens.analyses.similarity import _PairSums
from hublens.analyses.stats import MeanStat

#: Statistic classes whose instances merge (type name -> class); everything else is data.
MERGEABLE: dict[str, type] = {"MeanStat": MeanStat, "_PairSums": _PairSums}


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


# ---------------------------------------------------------------------------- extract / load


def _is_stat(value: Any) -> bool:
    return type(value).__name__ in MERGEABLE and type(value) is MERGEABLE[type(value).__name__]


def _stat_attrs(analysis: Any) -> list[str]:
    """Attributes holding a mergeable statistic or a non-empty dict of them."""
    names = []
    for name, value in vars(analysis).items():
        if _is_stat(value) or (
            isinstance(value, dict) and value and all(_is_stat(v) for v in value.values())
        ):
            names.append(name)
    return names


def _summed_attrs(analysis: Any) -> list[str]:
    names = getattr(analysis, "summed_state", ())
    return [n for n in names if hasattr(analysis, n)]


def analysis_state(analysis: Any, *, final: bool) -> dict[str, Any]:
    """The part of an analysis's state that data-parallel ranks must reduce now.

    Args:
        analysis: An analysis (after a pass of :func:`hublens.scan.collect`).
        final: Whether this was the analysis's last pass (then its statistics are included).

    Returns:
        ``{attribute: value}``; values are statistics, tensors, numbers or dicts of them.

    Raises:
        ValueError: A multi-pass analysis declares no ``summed_state``.
    """
    if getattr(analysis, "n_passes", 1) > 1 and not hasattr(analysis, "summed_state"):
        raise ValueError(
            f"Analysis {analysis.name!r} takes {analysis.n_passes} passes but declares no "
            "`summed_state` (the attributes its later passes read), so it cannot run "
            "distributed; run it in one process."
        )
    names = _summed_attrs(analysis)
    if final:
        names += [n for n in _stat_attrs(analysis) if n not in names]
    return {name: getattr(analysis, name) for name in names}


def load_state(analysis: Any, state: dict[str, Any]) -> None:
    """Write a (merged) state back into an analysis."""
    for name, value in state.items():
        setattr(analysis, name, value)


# ----------------------------------------------------------------------------------- merging


def _fold(a: Any, b: Any, where: str) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if _is_stat(a) and type(a) is type(b):
        a.merge(b)
        return a
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        if a.shape != b.shape:
            raise RuntimeError(f"{where}: shapes {tuple(a.shape)} and {tuple(b.shape)} differ.")
        return a + b.to(a.device)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _fold(out.get(key), value, f"{where}[{key!r}]")
        return out
    raise RuntimeError(f"{where}: cannot merge {type(a).__name__} with {type(b).__name__}.")


def merge_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Fold the states of all ranks, in rank order, into one (the inputs may be modified).

    Statistics merge (:meth:`MeanStat.merge`, sums add), tensors and numbers add, dicts unite
    their keys. ``merge_states([s])`` is ``s``.
    """
    if not states:
        raise ValueError("merge_states([]): pass the state of at least one rank.")
    merged = dict(states[0])
    for state in states[1:]:
        for name, value in state.items():
            merged[name] = _fold(merged.get(name), value, name)
    return merged


# ------------------------------------------------------------------------- wire format


def _encode_key(key: Any) -> Any:
    if isinstance(key, tuple):
        return {"tuple": [_encode_key(k) for k in key]}
    if isinstance(key, (str, int)) and not isinstance(key, bool):
        return key
    raise TypeError(f"Cannot send a dict key of type {type(key).__name__} between ranks.")


def _decode_key(key: Any) -> Any:
    if isinstance(key, dict):
        return tuple(_decode_key(k) for k in key["tuple"])
    return key


def _encode(value: Any, tensors: dict[str, Tensor]) -> Any:
    if value is None:
        return None
    if isinstance(value, Tensor):
        ref = f"t{len(tensors)}"
        tensors[ref] = value.detach().to("cpu").contiguous().clone()
        return {"tensor": ref}
    if isinstance(value, bool):
        raise TypeError("Booleans are not additive state.")
    if isinstance(value, (int, float)):
        return {"number": value}
    if _is_stat(value):
        if hasattr(value, "flush"):
            value.flush()  # buffered updates (e.g. _PairSums.m_x) into the fields
        fields = {
            f.name: _encode(getattr(value, f.name), tensors) for f in dataclasses.fields(value)
        }
        return {"stat": type(value).__name__, "fields": fields}
    if isinstance(value, dict):
        return {"dict": [[_encode_key(k), _encode(v, tensors)] for k, v in value.items()]}
    raise TypeError(f"Cannot send a {type(value).__name__} between ranks.")


def _decode(node: Any, tensors: dict[str, Tensor]) -> Any:
    if node is None:
        return None
    if "tensor" in node:
        return tensors[node["tensor"]]
    if "number" in node:
        return node["number"]
    if "stat" in node:
        cls = MERGEABLE[node["stat"]]
        return cls(**{k: _decode(v, tensors) for k, v in node["fields"].items()})
    return {_decode_key(k): _decode(v, tensors) for k, v in node["dict"]}


def encode_state(state: dict[str, Any]) -> bytes:
    """Serialise a state without pickle: a length-prefixed JSON structure + safetensors."""
    from safetensors.torch import save

    tensors: dict[str, Tensor] = {}
    structure = json.dumps({name: _encode(v, tensors) for name, v in state.items()}).encode()
    return struct.pack("<Q", len(structure)) + structure + save(tensors)


def decode_state(payload: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_state`."""
    from safetensors.torch import load

    (size,) = struct.unpack("<Q", payload[:8])
    structure = json.loads(payload[8 : 8 + size].decode())
    tensors = load(payload[8 + size :])
    return {name: _decode(node, tensors) for name, node in structure.items()}


def all_gather_states(state: dict[str, Any], group: Any = None) -> list[dict[str, Any]]:
    """Every rank's state, in rank order (a collective: every rank must call it)."""
    import torch.distributed as dist

    device = torch.device("cpu")
    if dist.get_backend(group) == "nccl":
        device = torch.device("cuda", torch.cuda.current_device())
    payload = torch.frombuffer(bytearray(encode_state(state)), dtype=torch.uint8).to(device)
    world = dist.get_world_size(group)
    size = torch.tensor([payload.numel()], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size, group=group)
    longest = int(max(int(s) for s in sizes))
    padded = torch.zeros(longest, dtype=torch.uint8, device=device)
    padded[: payload.numel()] = payload
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded, group=group)
    pairs = zip(gathered, sizes, strict=True)
    return [decode_state(g[: int(s)].cpu().numpy().tobytes()) for g, s in pairs]


def reduce_analysis(analysis: Any, *, final: bool, group: Any = None) -> None:
    """All-reduce one analysis's state across the ranks of ``group`` (a collective).

    Args:
        analysis: The analysis, after a pass over this rank's shard.
        final: Whether that was its last pass.
        group: The process group (None: the default one).
    """
    states = all_gather_states(analysis_state(analysis, final=final), group)
    load_state(analysis, merge_states(states))
