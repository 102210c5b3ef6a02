"""Worker of tests/unit/test_distributed.py, started by torchrun: a distributed scan.

Usage: torchrun --nproc-per-node 2 tests/helpers/distributed_worker.py MODEL_DIR DATA.jsonl OUT_DIR
Each rank writes OUT_DIR/rank{R}.csv (the result table) and OUT_DIR/rank{R}.json (provenance).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import hublens
from hublens.data import ParallelData
from tests.helpers.distributed_analyses import make_analyses


def main() -> None:
    model_dir, data_path, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    torch.set_num_threads(1)
    model = hublens.load_model(model_dir)
    data = ParallelData.load(data_path)
    result = hublens.semantic_hub_scan(
        model, data, analyses=make_analyses(), batch_size=3, progress=False, distributed=True
    )
    rank = dist.get_rank()
    result.table().to_csv(out / f"rank{rank}.csv", index=False)
    (out / f"rank{rank}.json").write_text(json.dumps(result.provenance, default=str))
    (out / f"options{rank}.json").write_text(json.dumps(result.options, default=str))
    assert hublens.hooks.attached_hooks(model) == []
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
