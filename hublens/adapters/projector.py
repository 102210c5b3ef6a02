"""The trainable projector: encoder rows → language-model embedding rows.

A window-level mean pool (SALMONN's window-level idea, without the Q-Former's attention:
``window`` encoder rows become one LM row; 1 keeps every row), then LayerNorm and a two-layer
bottleneck MLP (LLaVA-1.5's projector is a two-layer MLP; the bottleneck keeps the shipped
file small). Saved as safetensors with its config and training record in the metadata.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn


@dataclass(frozen=True)
class ProjectorConfig:
    """Shape of a projector.

    Attributes:
        d_in: Encoder width.
        d_out: LM width (d_model).
        hidden: Bottleneck width.
        window: Encoder rows pooled into one output row.
    """

    d_in: int
    d_out: int
    hidden: int = 128
    window: int = 1


class MLPProjector(nn.Module):
    """Window mean-pool → LayerNorm → Linear → GELU → Linear.

    Example:
        >>> proj = MLPProjector(ProjectorConfig(d_in=8, d_out=4, hidden=6, window=2))
        >>> proj(torch.zeros(10, 8)).shape
        torch.Size([5, 4])
    """

    def __init__(self, config: ProjectorConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = nn.LayerNorm(config.d_in)
        self.fc1 = nn.Linear(config.d_in, config.hidden)
        self.fc2 = nn.Linear(config.hidden, config.d_out)

    def pool(self, x: Float[Tensor, "*b n d_in"]) -> Float[Tensor, "*b m d_in"]:
        """Mean over windows of ``window`` rows (a last partial window is averaged as is)."""
        w = self.config.window
        if w == 1:
            return x
        n = x.shape[-2]
        chunks = [x[..., i : i + w, :].mean(-2) for i in range(0, n, w)]
        return torch.stack(chunks, dim=-2)

    def forward(self, x: Float[Tensor, "*b n d_in"]) -> Float[Tensor, "*b m d_out"]:
        """Project encoder rows."""
        if x.shape[-1] != self.config.d_in:
            raise ValueError(
                f"The projector takes rows of width {self.config.d_in}; got {tuple(x.shape)}."
            )
        h = self.norm(self.pool(x))
        return self.fc2(nn.functional.gelu(self.fc1(h)))

    def save(self, path: str | Path, *, record: dict[str, Any] | None = None) -> Path:
        """Write the weights (fp16) and the config + training record as safetensors metadata."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in state.items()}
        meta = {"config": json.dumps(asdict(self.config)), "record": json.dumps(record or {})}
        save_file(tensors, str(path), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | Path) -> tuple[MLPProjector, dict[str, Any]]:
        """Read a projector and its training record (safetensors only, never pickles)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"projector file {str(path)!r} does not exist; train one with "
                "`hublens train-projector`."
            )
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        if "config" not in meta:
            raise ValueError(f"{str(path)!r} has no projector config in its metadata.")
        projector = cls(ProjectorConfig(**json.loads(meta["config"])))
        state = {k: v.float() for k, v in load_file(str(path)).items()}
        projector.load_state_dict(state, strict=True)
        return projector.eval(), json.loads(meta.get("record", "{}"))
