"""A model under benchmark: the hublens model and an independent plain-transformers twin.

Booting a TransformerBridge rewrites the Hugging Face model in place, so the bare-transformers
baseline is a second copy loaded from the same weights: the verified cache folder of a bundled
model, the user's folder, or (for the quick run) a deep copy of a tiny random model taken
before booting.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: Tiny random models of real architectures for the quick run: name -> transformers config.
TINY = ("tiny-llama", "tiny-gemma3")


@dataclass
class ModelPair:
    """The model under benchmark.

    Attributes:
        name: What the user asked for.
        model: The HubModel (a TransformerBridge inside).
        reference: The same weights as a plain transformers model (eager attention), or None.
    """

    name: str
    model: Any
    reference: Any | None


def _tiny(kind: str, *, seed: int = 0) -> tuple[Any, Any]:
    """A tiny random model of a real architecture and a BPE tokenizer of the built-in words."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    from hublens.data.builtin import load_builtin

    words = load_builtin("multilingual-words")
    corpus = [t for item in words.items for t in item.values()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=["<pad>", "<bos>", "<eos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        add_bos_token=True,
    )
    common: dict[str, Any] = dict(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=256,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    if kind == "tiny-llama":
        config: Any = LlamaConfig(num_key_value_heads=2, tie_word_embeddings=False, **common)
        cls: Any = LlamaForCausalLM
    else:
        config = Gemma3TextConfig(
            num_key_value_heads=1,
            head_dim=32,
            sliding_window=16,
            layer_types=["sliding_attention"] * 3 + ["full_attention"],
            **common,
        )
        cls = Gemma3ForCausalLM
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    hf = cls(config).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return hf, tokenizer


def _reference_folder(name: str) -> Path | None:
    from hublens.bundled import BUNDLED
    from hublens.cache import cache_root

    if name in BUNDLED:
        return cache_root() / f"{name}-{BUNDLED[name].package_version()}-fp32"
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    return None


def load_pair(
    name: str, *, dtype: torch.dtype = torch.float32, reference: bool = True
) -> ModelPair:
    """Load a model for benchmarking, with its plain-transformers twin.

    Args:
        name: A bundled name, a local folder, a Hugging Face name (local cache), a ``.gguf``
            file, or ``tiny-llama`` / ``tiny-gemma3`` (random weights, for a quick run).
        dtype: Parameter dtype.
        reference: Also load the plain transformers copy (the "bare forward" baseline).

    Returns:
        The pair; ``reference`` is None when not asked for or not locatable (a ``.gguf``
        file is read through hublens's cache folder only for bundled models).
    """
    import hublens

    if name in TINY:
        hf, tokenizer = _tiny(name)
        twin = copy.deepcopy(hf) if reference else None
        return ModelPair(name, hublens.load_model(hf, tokenizer, dtype=dtype), twin)
    model = hublens.load_model(name, dtype=dtype)
    twin = None
    if reference:
        from transformers import AutoModelForCausalLM

        folder = _reference_folder(name)
        source: str | os.PathLike[str] = folder if folder is not None else name
        if folder is not None or not Path(name).suffix == ".gguf":
            twin = AutoModelForCausalLM.from_pretrained(
                source,
                dtype=dtype,
                attn_implementation="eager",
                local_files_only=True,
                use_safetensors=True,
            ).eval()
    return ModelPair(name, model, twin)
