"""`HubModel`: a TransformerLens 4 bridge plus the facts analyses need about it."""

from __future__ import annotations

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

    def tokenize(self, texts: str | list[str]) -> TokenBatch:
        """Tokenize texts into a right-padded batch, with this model's BOS policy.

        Args:
            texts: One text or a list of texts.

        Returns:
            The batch, on the model's device.

        Raises:
            ValueError: ``texts`` is empty or contains an empty string.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise ValueError("texts=[]: pass at least one text to tokenize.")
        rows = []
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text:
                raise ValueError(f"texts[{i}]={text!r}: every text must be a non-empty string.")
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            if self.prepend_bos:
                ids = [self.tokenizer.bos_token_id, *ids]
            rows.append(ids)
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
