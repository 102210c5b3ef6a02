"""The patchscope on the real Gemma-3-270M against the same patch by a plain PyTorch hook on HF."""

from __future__ import annotations

import pytest
import torch

from hublens.hooks import attached_hooks
from hublens.patching import IDENTITY_PROMPT, patchscope_readout
from tests.helpers.hf_steering import bos_ids

pytestmark = pytest.mark.integration

SOURCE = "The capital of France is Paris"


def test_gemma_patchscope_equals_a_plain_pytorch_hook(gemma_reference):
    model, reference = gemma_reference
    ident = bos_ids(model, IDENTITY_PROMPT)
    slot = [i for i, t in enumerate(ident) if model.tokenizer.decode([t]).strip() == "?"]
    assert len(slot) == 1
    ids = torch.tensor(
        [
            [
                model.tokenizer.encode(w, add_special_tokens=False)[0]
                for w in (" Paris", " hello", " France")
            ]
        ]
    )
    seen = {}

    def grab(module, args, output):
        seen["h"] = (output[0] if isinstance(output, tuple) else output)[0, -1].clone()

    def patch(module, args, output):
        hidden = (output[0] if isinstance(output, tuple) else output).clone()
        hidden[:, slot[0]] = seen["h"]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    layers = [0, 6, 12]
    got = patchscope_readout(model, [SOURCE], ids, layers=layers)
    for j, layer in enumerate(layers):
        block = reference.model.layers[layer]
        with torch.no_grad():
            handle = block.register_forward_hook(grab)
            reference(input_ids=torch.tensor([bos_ids(model, SOURCE)]))
            handle.remove()
            handle = block.register_forward_hook(patch)
            logits = reference(input_ids=torch.tensor([ident])).logits[0, -1]
            handle.remove()
        expected = torch.log_softmax(logits.float(), -1)[ids[0]]
        torch.testing.assert_close(got.logprobs[j, 0], expected, atol=1e-5, rtol=0)
    assert (got.logprobs - got.clean).abs().max() > 1e-1  # the patch is visible
    assert int(got.top_ids[0, 0, 0]) == int(ids[0, 0])  # layer 0 decodes " Paris"
    assert attached_hooks(model) == []
