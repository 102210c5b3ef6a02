"""`HubModel`: a TransformerLens 4 bridge plus the facts analyses need about it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import PreTrainedTokenizerBase

#: Characters tokenizers use to mark a leading space inside a token.
_SPACE_MARKERS = ("▁", "Ġ")


@dataclass(frozen=True)
class Provenance:
    """Where a model's weights came from, for every result to record.

    Attributes:
        name: What the user asked for (bundled name, Hugging Face name, path, or "object").
        source: One of ``"bundled"``, ``"huggingface"``, ``"folder"``, ``"gguf"``, ``"object"``.
        tl_name: The name TransformerLens booted the architecture under.
        location: Package name and version, or the file/folder the weights came from.
        weights_sha256: sha256 of the cached safetensors file, when loaded through the cache.
        dtype: The parameter dtype, e.g. ``"float32"``.
        device: The device the model sits on.
        versions: Versions of hublens, transformer-lens, transformers and torch.
    """

    name: str
    source: str
    tl_name: str
    location: str
    weights_sha256: str | None
    dtype: str
    device: str
    versions: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        return asdict(self)


@dataclass(frozen=True)
class TokenConvention:
    """How a tokenizer writes a word that follows a space.

    Attributes:
        space_marker: The character that marks a leading space inside tokens (``"▁"`` for
            SentencePiece-style, ``"Ġ"`` for byte-level BPE), or ``""`` if none was found.
        auto_prefix_space: Whether the tokenizer inserts a space before the first word itself
            (then ``"word"`` and ``" word"`` tokenize alike at the start of a text).
    """

    space_marker: str
    auto_prefix_space: bool

    @classmethod
    def detect(cls, tokenizer: PreTrainedTokenizerBase) -> TokenConvention:
        """Read the convention off the tokenizer by tokenizing a probe word."""
        with_space = tokenizer.tokenize(" hello")
        bare = tokenizer.tokenize("hello")
        marker = next((m for m in _SPACE_MARKERS if with_space and with_space[0].startswith(m)), "")
        auto = bool(marker) and bool(bare) and bare[0].startswith(marker)
        return cls(space_marker=marker, auto_prefix_space=auto)


@dataclass(frozen=True)
class TokenBatch:
    """A right-padded batch of token ids.

    Right padding keeps every real token at the same position it has alone, so causal
    attention makes each row's real positions independent of the batch it is in.

    Attributes:
        ids: Token ids, padded on the right.
        attention_mask: 1 at real tokens, 0 at padding.
        lengths: Number of real tokens per row (BOS included).
    """

    ids: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"]
    lengths: Int[Tensor, " batch"]

    @property
    def last_positions(self) -> Int[Tensor, " batch"]:
        """Index of the last real token of each row."""
        return self.lengths - 1


class HubModel:
    """A TransformerLens 4 ``TransformerBridge`` with what semantic-hub analyses need.

    Attribute access falls through to the bridge, so ``model.hooks(...)``,
    ``model.run_with_hooks(...)``, ``model.run_with_cache(...)`` and ``model.generate(...)``
    are TransformerLens's own.

    Attributes:
        bridge: The TransformerLens bridge.
        tokenizer: The Hugging Face tokenizer.
        prepend_bos: Whether prompts start with BOS (explicit per model, recorded).
        dominant_language: ISO code of the model's dominant language (usually ``"en"``).
        convention: The tokenizer's leading-space convention.
        provenance: Where the weights came from.

    Example:
        >>> model = hublens.load_model("gemma-3-270m")  # doctest: +SKIP
        >>> model.n_layers, model.d_model  # doctest: +SKIP
        (18, 640)
    """

    def __init__(
        self,
        bridge: TransformerBridge,
        tokenizer: PreTrainedTokenizerBase,
        *,
        prepend_bos: bool,
        dominant_language: str,
        provenance: Provenance,
    ) -> None:
        self.bridge = bridge
        self.tokenizer = tokenizer
        self.prepend_bos = prepend_bos
        self.dominant_language = dominant_language
        self.provenance = provenance
        self.convention = TokenConvention.detect(tokenizer)
        bridge.cfg.default_prepend_bos = prepend_bos

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes HubModel itself lacks: defer to the bridge.
        if name.startswith("__") or "bridge" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.__dict__["bridge"], name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the bridge's forward pass (logits by default)."""
        return self.bridge(*args, **kwargs)

    def __repr__(self) -> str:
        return (
            f"HubModel({self.provenance.name!r}, n_layers={self.n_layers}, "
            f"d_model={self.d_model}, d_vocab={self.d_vocab}, prepend_bos={self.prepend_bos})"
        )

    @property
    def n_layers(self) -> int:
        """Number of transformer blocks."""
        return int(self.bridge.cfg.n_layers)

    @property
    def d_model(self) -> int:
        """Width of the residual stream."""
        return int(self.bridge.cfg.d_model)

    @property
    def d_vocab(self) -> int:
        """Number of rows of the unembedding (logit width)."""
        return int(self.unembedding_weight.shape[0])

    @property
    def device(self) -> torch.device:
        """Device of the unembedding (where lens readouts run)."""
        return self.unembedding_weight.device

    @property
    def unembedding_weight(self) -> Float[Tensor, "d_vocab d_model"]:
        """The unembedding as Hugging Face stores it (rows are vocabulary entries), no copy."""
        return self.bridge.unembed.original_component.weight

    @property
    def unembedding_bias(self) -> Float[Tensor, " d_vocab"] | None:
        """The unembedding bias, if the model has one."""
        return getattr(self.bridge.unembed.original_component, "bias", None)

    @property
    def final_norm(self) -> torch.nn.Module | None:
        """The model's own final norm module (the Hugging Face module, outside any hook)."""
        ln_final = getattr(self.bridge, "ln_final", None)
        if ln_final is None:
            return None
        return getattr(ln_final, "original_component", ln_final)

    @property
    def logit_softcap(self) -> float | None:
        """Final-logit soft-capping value (Gemma-2 style), or None."""
        config = self.bridge.original_model.config
        text_config = getattr(config, "text_config", config)
        value = getattr(text_config, "final_logit_softcapping", None)
        return float(value) if value else None

    def word_token_ids(self, word: str, *, leading_space: bool = True) -> list[int]:
        """Token ids of ``word`` as it reads mid-text, with the leading space made explicit.

        Args:
            word: The word, without surrounding spaces.
            leading_space: Tokenize it as following a space (``" word"``); False for
                numerals glued to an operator or for scripts written without spaces.

        Returns:
            The ids, no special tokens.

        Raises:
            ValueError: ``word`` is empty or has surrounding whitespace.
        """
        if not word or word != word.strip():
            raise ValueError(
                f"word={word!r}: pass the bare word without surrounding whitespace; use "
                "leading_space=True to tokenize it as following a space."
            )
        text = " " + word if leading_space else word
        ids: list[int] = self.tokenizer.encode(text, add_special_tokens=False)
        if not leading_space and self.convention.auto_prefix_space and ids:
            # The tokenizer inserted a space of its own; strip it off the first token.
            first = self.tokenizer.convert_ids_to_tokens(ids[0])
            marker = self.convention.space_marker
            if first == marker:
                ids = ids[1:]
        return ids

    @property
    def context_length(self) -> int | None:
        """Most tokens one text may have: the model's context (``cfg.n_ctx``), or None."""
        n_ctx = getattr(self.bridge.cfg, "n_ctx", None)
        return int(n_ctx) if n_ctx else None

    def token_limit(self, max_tokens: int | None = None) -> int | None:
        """The token limit a text must keep to: ``max_tokens``, else :attr:`context_length`.

        Raises:
            ValueError: ``max_tokens`` is not a positive int, or exceeds the context.
        """
        context = self.context_length
        if max_tokens is None:
            return context
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise ValueError(f"max_tokens={max_tokens!r}: pass a positive int, or None.")
        if context is not None and max_tokens > context:
            raise ValueError(
                f"max_tokens={max_tokens} exceeds the model's context of {context:,} tokens; "
                f"pass max_tokens={context} or less (or None for the context)."
            )
        return max_tokens

    def encode_rows(
        self,
        texts: Sequence[str],
        *,
        max_tokens: int | None = None,
        describe: Callable[[int], str] | None = None,
    ) -> list[list[int]]:
        """Token ids of each text with this model's BOS policy, every row checked.

        Texts are encoded in one batched call of the tokenizer (ids equal
        ``tokenizer.encode(text, add_special_tokens=False)``, BOS prepended when
        :attr:`prepend_bos`). The tokenizer is used as it is: its backend's BPE word cache is
        bounded by the backend (10,000 words) and left alone. Emptying it after every batch, as
        hublens did before, made the native heap grow by about 0.7 kB per text on every pass,
        the same texts again included (tests/unit/test_hardening_tokenizer_memory.py).

        Args:
            texts: The texts.
            max_tokens: Longest row allowed (BOS included); None: the model's context.
            describe: Names text ``i`` in errors (default ``texts[i]=...``).

        Returns:
            One list of ids per text.

        Raises:
            TextTooLongError: A row is longer than the limit (refused, never truncated:
                truncation would silently change which token is read).
            NoTokensError: A text tokenizes to nothing (e.g. only characters the tokenizer
                strips); a row of BOS alone would read the same state for every such text.
            ValueError: An empty or non-string text, or a bad ``max_tokens``.
        """
        from hublens.errors import NoTokensError, TextTooLongError

        limit = self.token_limit(max_tokens)

        def name(i: int) -> str:
            return describe(i) if describe else f"texts[{i}]={_preview(texts[i])}"

        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text:
                raise ValueError(f"texts[{i}]={text!r}: every text must be a non-empty string.")
        encoded: list[list[int]] = self.tokenizer(
            list(texts), add_special_tokens=False, return_attention_mask=False
        )["input_ids"]
        bos = [self.tokenizer.bos_token_id] if self.prepend_bos else []
        rows = []
        for i, ids in enumerate(encoded):
            if not ids:
                raise NoTokensError(
                    f"{name(i)} has no tokens: the tokenizer of {self.provenance.name!r} keeps "
                    "none of its characters (e.g. zero-width or control characters only), so "
                    "there is nothing to read. Fix or drop that text."
                )
            row = [*bos, *ids]
            if limit is not None and len(row) > limit:
                what = (
                    f"max_tokens={limit}"
                    if max_tokens is not None
                    else f"the model's context of {limit:,} tokens"
                )
                raise TextTooLongError(
                    f"{name(i)} has {len(row):,} tokens (BOS included), more than {what}. "
                    "hublens refuses it rather than truncating it: shorten or split the text, "
                    "or drop it"
                    + (
                        f"; or pass a larger max_tokens (at most {self.context_length:,})."
                        if max_tokens is not None and self.context_length
                        else "; max_tokens cannot exceed the context."
                    )
                )
            rows.append(row)
        return rows

    def tokenize(self, texts: str | list[str], *, max_tokens: int | None = None) -> TokenBatch:
        """Tokenize texts into a right-padded batch, with this model's BOS policy.

        Every text is checked before anything runs: a batch holds at most
        ``len(texts) x max_tokens`` tokens (``max_tokens`` defaults to the model's context).

        Args:
            texts: One text or a list of texts.
            max_tokens: Longest row allowed, BOS included (None: :attr:`context_length`).

        Returns:
            The batch, on the model's device.

        Raises:
            ValueError: ``texts`` is empty or contains an empty string.
            TextTooLongError: A text has more tokens than the limit.
            NoTokensError: A text has no tokens at all.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise ValueError("texts=[]: pass at least one text to tokenize.")
        rows = self.encode_rows(texts, max_tokens=max_tokens)
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id or 0
        ids_t = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids_t[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        device = self.device
        return TokenBatch(
            ids=ids_t.to(device), attention_mask=mask.to(device), lengths=mask.sum(1).to(device)
        )


def _preview(text: str, width: int = 60) -> str:
    """``repr`` of a text, cut to about ``width`` characters."""
    return repr(text) if len(text) <= width else repr(text[:width]) + f"... ({len(text):,} chars)"
