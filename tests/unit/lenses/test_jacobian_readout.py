"""JacobianLensView reads what TransformerLens's JacobianLens reads, on tiny real architectures.

Independent computations: TL's own ``JacobianLens.readout`` on the same matrices, numpy
matmuls of the stored matrices, and plain transformers (hidden states, norm, lm_head).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hublens.hooks import ActivationStore, AllPositions, attached_hooks, capture_hooks
from hublens.lenses.jacobian import JacobianLensView
from tests.helpers.jacobian_lens import HELDOUT, fit_tl, tiny_model
from tests.helpers.lens_reference import hidden_states, lens_logprobs, token_ids


@pytest.fixture(scope="module", params=["llama", "gemma3"])
def fitted(request):
    """(HubModel, reference HF model, TL JacobianLens, JacobianLensView)."""
    model, reference = tiny_model(request.param)
    tl = fit_tl(model)
    yield model, reference, tl, JacobianLensView.from_tl(tl, model)
    assert attached_hooks(model) == []


def _resid_post(model, ids: torch.Tensor) -> torch.Tensor:
    """(layer, pos, d) hublens ``resid_post`` of every block for one row of ids."""
    store = ActivationStore()
    hooks = capture_hooks(model, store, where=AllPositions())
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        model(ids)
    return torch.stack([store.tensor(name)[0] for name, _ in hooks]).float()


def test_resid_post_is_tl_hook_out_and_hf_block_output(fitted):
    """TL's J[l] source (blocks.{l}.hook_out) is hublens's resid_post of block l."""
    model, reference, _, _ = fitted
    ids = torch.tensor([token_ids(model, HELDOUT[0])])
    ours = _resid_post(model, ids)
    with torch.no_grad():
        _, cache = model.bridge.run_with_cache(ids)
    tl = torch.stack([cache[f"blocks.{i}.hook_out"][0] for i in range(model.n_layers)])
    torch.testing.assert_close(ours, tl.float(), rtol=0, atol=0)
    torch.testing.assert_close(ours, hidden_states(reference, ids), rtol=1e-5, atol=1e-5)


def test_readout_equals_tl_readout(fitted):
    """Top-k ids and full log-probs per layer equal TL's readout of the same matrices (1e-5)."""
    model, _, tl, lens = fitted
    ids = torch.tensor([token_ids(model, HELDOUT[1])])
    theirs = tl.readout(model.bridge, ids, top_k=5, return_full_logits=True)
    h = _resid_post(model, ids)
    for layer in range(model.n_layers):
        ours = lens.readout(h[layer], top_k=5, layer=layer)
        assert torch.equal(ours.top_ids, theirs.lens_topk_indices[layer])
        expected = torch.log_softmax(theirs.lens_logits[layer].double(), -1).float()
        got = lens.logprobs(h[layer], layer=layer)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
        top = torch.gather(expected, -1, ours.top_ids)
        torch.testing.assert_close(ours.top_logprobs, top, rtol=0, atol=1e-5)


def test_intermediate_layers_equal_hf_norm_of_numpy_transport(fitted):
    """lens(h_l) = log_softmax(lm_head(norm(h_l @ J_l.T))), J applied by numpy, HF modules."""
    model, reference, tl, lens = fitted
    ids = torch.tensor([token_ids(model, HELDOUT[0])])
    h = hidden_states(reference, ids)
    for layer in range(model.n_layers - 1):
        moved = torch.from_numpy(h[layer].numpy() @ tl.jacobians[layer].numpy().T)
        expected = lens_logprobs(reference, moved)
        got = lens.logprobs(h[layer], layer=layer)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-4)


def test_transport_is_numpy_matmul_of_stored_matrix(fitted, tmp_path):
    """transform(h, l) = h @ J_l.T, with J_l read from lens.safetensors by numpy."""
    from safetensors.numpy import load_file

    model, _, _, lens = fitted
    lens.save(tmp_path / "lens", dtype=torch.float32)
    stored = load_file(str(tmp_path / "lens" / "lens.safetensors"))
    loaded = JacobianLensView.load(tmp_path / "lens", model)
    h = torch.randn(7, model.d_model)
    for layer in range(model.n_layers - 1):
        expected = h.numpy() @ stored[f"J.{layer}"].T
        got = loaded.transform(h, layer)
        np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-5)


def test_last_layer_equals_model_logprobs(fitted):
    """At the last layer the lens is the identity: it reads plain transformers' log-probs."""
    model, reference, _, lens = fitted
    ids = torch.tensor([token_ids(model, HELDOUT[1])])
    last = model.n_layers - 1
    h = hidden_states(reference, ids)[last]
    with torch.no_grad():
        expected = torch.log_softmax(reference(input_ids=ids).logits[0].float(), -1)
    torch.testing.assert_close(lens.transform(h, last), h, rtol=0, atol=0)
    torch.testing.assert_close(lens.logprobs(h, layer=last), expected, rtol=0, atol=1e-5)
    stacked = lens.readout(hidden_states(reference, ids), top_k=3, layer=range(model.n_layers))
    torch.testing.assert_close(
        stacked.top_logprobs[last], expected.topk(3).values, rtol=0, atol=1e-5
    )


def test_layer_is_required_and_checked(fitted):
    model, _, _, lens = fitted
    h = torch.randn(2, model.d_model)
    with pytest.raises(ValueError, match="pass layer="):
        lens.readout(h, top_k=1)
    with pytest.raises(ValueError, match="out of range"):
        lens.readout(h, top_k=1, layer=model.n_layers)
    assert lens.readout(h, top_k=1, layer=-1).top_ids.shape == (2, 1)  # -1 = last, identity
