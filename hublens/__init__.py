"""hublens: the semantic hub hypothesis (Wu et al., ICLR 2025) on TransformerLens 4 models.

Example:
    >>> import hublens
    >>> model = hublens.load_model("gemma-3-270m")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path as _Path

# In a source checkout, hooks/ and analyses/ sit beside hublens/ and are installed as
# hublens.hooks and hublens.analyses (pyproject's package-dir). Make the same names resolve when
# the checkout itself comes first on sys.path (e.g. `python -c ...` from the repository root).
_root = _Path(__file__).resolve().parent.parent
if (_root / "pyproject.toml").is_file() and (_root / "hooks" / "__init__.py").is_file():
    __path__.append(str(_root))  # noqa: F821 - __path__ is defined for packages

from hublens._version import __version__  # noqa: E402
from hublens.bundled import BUNDLED, DEFAULT_MODEL  # noqa: E402
from hublens.errors import (  # noqa: E402
    CacheError,
    HublensError,
    UnknownModelError,
    WeightsNotFoundError,
)
from hublens.loading import load_model  # noqa: E402
from hublens.model import HubModel, Provenance, TokenBatch, TokenConvention  # noqa: E402
from hublens.scan import semantic_hub_scan  # noqa: E402
from hublens.steering import steer  # noqa: E402

__all__ = [
    "BUNDLED",
    "DEFAULT_MODEL",
    "CacheError",
    "HubModel",
    "HublensError",
    "Provenance",
    "TokenBatch",
    "TokenConvention",
    "UnknownModelError",
    "WeightsNotFoundError",
    "__version__",
    "load_model",
    "semantic_hub_scan",
    "steer",
]
