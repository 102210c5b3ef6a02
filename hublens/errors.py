"""Exceptions raised by hublens.

Every error names the argument or file at fault and says what to do instead. Each class also
derives from the closest built-in exception, so ``except ValueError`` keeps working.
"""

from __future__ import annotations


class HublensError(Exception):
    """Base class of every error hublens raises on purpose."""


class UnknownModelError(HublensError, ValueError):
    """A model name that is neither bundled, a local path, nor a TransformerLens model."""


class WeightsNotFoundError(HublensError, FileNotFoundError):
    """A known model whose weights are not available on this machine."""


class CacheError(HublensError, RuntimeError):
    """A weight-cache entry that is corrupt, truncated or incomplete."""


class TextTooLongError(HublensError, ValueError):
    """A text with more tokens than the model's context or the ``max_tokens`` asked for."""


class NoTokensError(HublensError, ValueError):
    """A text that the model's tokenizer turns into no tokens at all (nothing to read)."""
