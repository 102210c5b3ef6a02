"""What every check reads: the model, a few probe texts, the settings, in one object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from hublens.model import HubModel

#: Languages of the probe sentences (first item of ``multilingual-sentences``): different
#: scripts and lengths, so a right-padded batch really pads.
PROBE_LANGUAGES: tuple[str, ...] = ("en", "zh", "fr", "de")


def probe_texts(n: int = len(PROBE_LANGUAGES)) -> list[str]:
    """The first built-in multilingual sentence in ``n`` languages (different lengths)."""
    from hublens.data.builtin import load_builtin

    item = load_builtin("multilingual-sentences")[0]
    return [item[lang] for lang in PROBE_LANGUAGES[:n]]


@dataclass
class CheckContext:
    """Inputs shared by the checks.

    Attributes:
        model: The model under test.
        texts: Probe texts of different lengths.
        batch_size: The scan's batch size (for the cost check).
        lens: The lens whose last layer must equal the model (None: the logit lens of the
            model, ``LogitLens.from_model(model, final_norm=False)``).
        layers: Sampled layers for the hidden-state check.
        extra: Anything a check wants to hand the next one.
    """

    model: HubModel
    texts: list[str]
    batch_size: int = 8
    lens: Any = None
    layers: list[int] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dtype(self) -> torch.dtype:
        """The model's parameter dtype."""
        return self.model.unembedding_weight.dtype


def sampled_layers(n_layers: int) -> list[int]:
    """First, a quarter, middle, three quarters and last layer (distinct, sorted)."""
    picks = {0, n_layers // 4, n_layers // 2, (3 * n_layers) // 4, n_layers - 1}
    return sorted(p for p in picks if 0 <= p < n_layers)
