"""Patching on the real Gemma-3-270M against the same patch by a plain PyTorch hook on HF."""

from __future__ import annotations

import pytest
import torch

from hublens.hooks import attached_hooks
from hublens.patching import ConceptPatching, PatchTarget, read_states, resolve_positions
from tests.helpers.hf_steering import bos_ids

pytestmark = pytest.mark.integration

SOURCE = 'Français: "chien" - English: "dog"\nFrançais: "fleur" - English: "'
TARGET = 'Deutsch: "Hund" - 中文: "狗"\nDeutsch: "Katze" - 中文: "'


@pytest.fixture(scope="module")
def gemma_pair(gemma_reference):
    """(HubModel, the same GGUF dequantised by plain transformers)."""
    model, reference = gemma_reference
    yield model, reference
    assert attached_hooks(model) == []


def test_gemma_patch_equals_a_plain_pytorch_hook(gemma_pair):
    model, reference = gemma_pair
    ids = torch.tensor([[model.tokenizer.encode(w, add_special_tokens=False)[0] for w in "猫花狗"]])
    src, tgt = bos_ids(model, SOURCE), bos_ids(model, TARGET)
    seen = {}

    def grab(module, args, output):
        seen["h"] = (output[0] if isinstance(output, tuple) else output)[0, -1].clone()

    def patch(module, args, output):
        hidden = (output[0] if isinstance(output, tuple) else output).clone()
        hidden[:, len(tgt) - 1] = seen["h"]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    for layer in (3, 9, model.n_layers - 1):
        block = reference.model.layers[layer]
        with torch.no_grad():
            handle = block.register_forward_hook(grab)
            reference(input_ids=torch.tensor([src]))
            handle.remove()
            handle = block.register_forward_hook(patch)
            logits = reference(input_ids=torch.tensor([tgt])).logits[0, -1]
            handle.remove()
        expected = torch.log_softmax(logits.float(), -1)[ids[0]]
        states = read_states(model, [SOURCE], resolve_positions(model, [SOURCE], -1, "s"), [layer])
        runner = PatchTarget(model, [TARGET], resolve_positions(model, [TARGET], -1, "t"))
        got, _ = runner.logprobs(ids, states=states, layers=[layer])
        torch.testing.assert_close(got[0], expected, atol=1e-5, rtol=0)
        clean, _ = runner.logprobs(ids)
        assert (got - clean).abs().max() > 1e-2  # the patch is visible


def test_gemma_concept_patching_small_run_has_every_condition(gemma_pair):
    model, _ = gemma_pair
    result = ConceptPatching(n_items=4, layers=[4, 12], progress=False).run(model)
    conditions = {a.split("/")[1] for a in result.analyses}
    assert conditions == {"patch", "mean_patch", "unrelated", "placebo", "none"}
    none = result.select("concept_patching/none", metric="p_Y_D")
    assert none[0].mean == none[1].mean > 0.01  # the unpatched target answers in Chinese
