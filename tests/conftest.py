"""Shared fixtures: tiny random models built from real transformers configs (no weights)."""

from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# Reduction order depends on the thread count; HUBLENS_TEST_THREADS=1 (and 2) reruns the suite
# under another order to show that no tolerance depends on one (issue 16; .ci/run does both).
if os.environ.get("HUBLENS_TEST_THREADS"):
    torch.set_num_threads(int(os.environ["HUBLENS_TEST_THREADS"]))

from hublens.hooks import attached_hooks  # noqa: E402

CORPUS = [
    "The cat sleeps on the warm mat.",
    "Le chat dort sur le tapis chaud.",
    "猫在温暖的垫子上睡觉。",
    "three plus two equals five",
    "3+2=5 and 4*2=8",
    "def add(a, b): return [a, b, a + b]",
    'Français: "fleur" - 中文: "花"',
    "flower Flower fleur Blume flor",
]


def build_tokenizer(
    extra_corpus: tuple[str, ...] = (), *, lines: list[str] | None = None, vocab_size: int = 400
):
    """A byte-level BPE tokenizer trained in memory on a small corpus (plus ``extra_corpus``).

    ``lines`` replaces the training text entirely (default: the corpus and ``extra_corpus``,
    four times).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<bos>", "<eos>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    if lines is None:
        lines = [*CORPUS, *extra_corpus] * 4
    tok.train_from_iterator(lines, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        add_bos_token=True,
    )


def tiny_config(kind: str, vocab_size: int):
    """A tiny config of a real architecture."""
    from transformers import Gemma3TextConfig, LlamaConfig

    if kind == "llama":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=128,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
            tie_word_embeddings=False,
        )
    if kind == "gemma3":
        return Gemma3TextConfig(
            vocab_size=vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            sliding_window=8,
            layer_types=["sliding_attention", "sliding_attention", "full_attention"],
            max_position_embeddings=128,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
        )
    raise ValueError(kind)


def build_tiny(
    kind: str, *, seed: int = 0, extra_corpus: tuple[str, ...] = (), tokenizer=None
):
    """(HF model, an independent deep copy of it, tokenizer), random weights, eager attention.

    The tokenizer is :func:`build_tokenizer`'s (with ``extra_corpus``) unless one is given.
    """
    from transformers import Gemma3ForCausalLM, LlamaForCausalLM

    if tokenizer is None:
        tokenizer = build_tokenizer(extra_corpus)
    config = tiny_config(kind, len(tokenizer))
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    cls = {"llama": LlamaForCausalLM, "gemma3": Gemma3ForCausalLM}[kind]
    hf = cls(config).eval()
    # Random init leaves norms at their identity values; perturb every parameter so the
    # norms and unembedding matter.
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    reference = copy.deepcopy(hf)  # booting the bridge rewrites the HF model in place
    return hf, reference, tokenizer


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def tiny(request):
    """(HubModel, reference HF model, kind) for each tiny architecture."""
    import hublens

    hf, reference, tokenizer = build_tiny(request.param)
    model = hublens.load_model(hf, tokenizer)
    yield model, reference, request.param
    assert attached_hooks(model) == [], "a test left hooks attached"


@pytest.fixture(scope="module")
def tiny_llama():
    """(HubModel, reference) of the tiny Llama."""
    import hublens

    hf, reference, tokenizer = build_tiny("llama")
    return hublens.load_model(hf, tokenizer), reference
