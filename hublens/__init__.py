"""hublens: the semantic hub hypothesis (Wu et al., ICLR 2025) on TransformerLens 4 models.

Example:
    >>> import hublens
    >>> model = hublens.load_model("gemma-3-270m")  # doctest: +SKIP
"""

from __future__ import annotations

from hublens._version import __version__
from hublens.bundled import BUNDLED, DEFAULT_MODEL
from hublens.check import CheckReport, CheckResult, check
from hublens.errors import (
    CacheError,
    HublensError,
    UnknownModelError,
    WeightsNotFoundError,
)
from hublens.loading import load_model
from hublens.model import HubModel, Provenance, TokenBatch, TokenConvention
from hublens.scan import semantic_hub_scan
from hublens.steering import steer

__all__ = [
    "BUNDLED",
    "DEFAULT_MODEL",
    "CacheError",
    "CheckReport",
    "CheckResult",
    "HubModel",
    "HublensError",
    "Provenance",
    "TokenBatch",
    "TokenConvention",
    "UnknownModelError",
    "WeightsNotFoundError",
    "__version__",
    "check",
    "load_model",
    "semantic_hub_scan",
    "steer",
]
