"""Steering hooks against plain PyTorch forward hooks on the Hugging Face modules."""

from __future__ import annotations

import pytest
import torch

from hublens.hooks import (
    ActivationStore,
    AllPositions,
    Positions,
    SteerHook,
    attached_hooks,
    capture_hooks,
    hook_name,
    steering_hooks,
)

TEXT = "The cat sleeps on the warm mat."


def _hf_steer(reference, layer, vector, positions, scale=1.0, prompt_len=None):
    """Plain PyTorch forward hook on the HF decoder layer that adds scale * vector."""

    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if prompt_len is not None and hidden.shape[1] < prompt_len:
            return output
        hidden = hidden.clone()
        for p in positions:
            hidden[:, p] += scale * vector
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return reference.model.layers[layer].register_forward_hook(hook)


def test_steer_changes_stream_by_exactly_the_vector_at_chosen_positions(tiny):
    model, reference, _ = tiny
    batch = model.tokenize(TEXT)
    layer, positions, scale = 1, [1, 3], 2.5
    vector = torch.randn(model.d_model)

    def run(extra):
        store = ActivationStore()
        hooks = extra + capture_hooks(model, store, where=AllPositions())
        with torch.no_grad(), model.hooks(fwd_hooks=hooks):
            logits = model(batch.ids)
        return store, logits

    base, _ = run([])
    steered, logits = run(
        steering_hooks(model, vector, layers=layer, scale=scale, where=Positions(positions))
    )
    # At the steered layer: exactly +scale*vector at the chosen positions, nothing elsewhere.
    diff = steered.tensor(hook_name(layer)) - base.tensor(hook_name(layer))
    expected = torch.zeros_like(diff)
    expected[:, positions] = scale * vector
    assert torch.allclose(diff, expected, atol=1e-5, rtol=0)
    untouched = [p for p in range(diff.shape[1]) if p not in positions]
    assert torch.equal(diff[:, untouched], torch.zeros_like(diff[:, untouched]))
    # Layers before it are unchanged.
    for earlier in range(layer):
        assert torch.equal(steered.tensor(hook_name(earlier)), base.tensor(hook_name(earlier)))
    # Final logits match the same intervention done with a plain PyTorch hook on HF.
    handle = _hf_steer(reference, layer, vector, positions, scale)
    try:
        with torch.no_grad():
            expected_logits = reference(input_ids=batch.ids).logits
    finally:
        handle.remove()
    assert torch.allclose(logits, expected_logits, atol=1e-4, rtol=0)


def test_scale_zero_reproduces_unsteered_logits_exactly(tiny):
    model, _, _ = tiny
    batch = model.tokenize(TEXT)
    with torch.no_grad():
        plain = model(batch.ids)
        with model.hooks(
            fwd_hooks=steering_hooks(model, torch.randn(model.d_model), layers=[0, 2], scale=0.0)
        ):
            steered = model(batch.ids)
    assert torch.equal(plain, steered)


def test_replace_mode_writes_the_vector(tiny):
    model, _, _ = tiny
    batch = model.tokenize(TEXT)
    vector = torch.randn(model.d_model)
    store = ActivationStore()
    hooks = steering_hooks(model, vector, layers=0, mode="replace", where=Positions([2]))
    hooks += capture_hooks(model, store, layers=0, where=AllPositions())
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        model(batch.ids)
    assert torch.equal(store.tensor(hook_name(0))[0, 2], vector)


def test_actadd_rows_go_to_their_positions(tiny):
    model, _, _ = tiny
    batch = model.tokenize(TEXT)
    vectors = torch.randn(2, model.d_model)
    base, steered = ActivationStore(), ActivationStore()
    with torch.no_grad():
        with model.hooks(fwd_hooks=capture_hooks(model, base, layers=1, where=AllPositions())):
            model(batch.ids)
        hooks = steering_hooks(model, vectors, layers=1, where=Positions([0, 1]))
        hooks += capture_hooks(model, steered, layers=1, where=AllPositions())
        with model.hooks(fwd_hooks=hooks):
            model(batch.ids)
    diff = steered.tensor(hook_name(1)) - base.tensor(hook_name(1))
    assert torch.allclose(diff[0, :2], vectors, atol=1e-5)
    assert torch.equal(diff[0, 2:], torch.zeros_like(diff[0, 2:]))


def _greedy(model, ids, hooks, use_cache):
    with model.hooks(fwd_hooks=hooks):
        return model.generate(
            ids,
            max_new_tokens=6,
            do_sample=False,
            use_past_kv_cache=use_cache,
            verbose=False,
            stop_at_eos=False,
        )


def test_prompt_only_steering_cached_equals_uncached_and_matches_hf(tiny):
    model, reference, _ = tiny
    batch = model.tokenize(TEXT)
    prompt_len = batch.ids.shape[1]
    vector = torch.randn(model.d_model) * 3
    hooks = steering_hooks(model, vector, layers=1, scale=2.0, prompt_len=prompt_len)
    cached = _greedy(model, batch.ids, hooks, True)
    uncached = _greedy(model, batch.ids, hooks, False)
    assert torch.equal(cached, uncached)
    assert attached_hooks(model) == []
    # The same greedy decode in plain transformers, steering only the prompt positions.
    handle = _hf_steer(reference, 1, vector, range(prompt_len), 2.0, prompt_len=prompt_len)
    try:
        ids = batch.ids
        with torch.no_grad():
            for _ in range(6):
                nxt = reference(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)
                ids = torch.cat([ids, nxt], dim=1)
    finally:
        handle.remove()
    assert torch.equal(cached, ids)
    assert not torch.equal(cached, reference.generate(batch.ids, max_new_tokens=6, do_sample=False))


def test_prompt_only_leaves_decode_steps_untouched(tiny):
    model, _, _ = tiny
    batch = model.tokenize(TEXT)
    prompt_len = batch.ids.shape[1]
    calls = []
    steer = SteerHook(torch.ones(model.d_model), 1.0, AllPositions(), "add", prompt_len)

    def spy(x, hook):
        out = steer(x, hook)
        calls.append((x.shape[1], torch.equal(out, x)))
        return out

    with model.hooks(fwd_hooks=[(hook_name(0), spy)]):
        model.generate(
            batch.ids,
            max_new_tokens=3,
            do_sample=False,
            verbose=False,
            use_past_kv_cache=True,
            stop_at_eos=False,
        )
    assert calls[0] == (prompt_len, False)  # the prompt pass is steered
    assert all(n == 1 and unchanged for n, unchanged in calls[1:])  # decode steps are not
    assert len(calls) >= 3


def test_steering_bad_input(tiny):
    model, _, _ = tiny
    v = torch.randn(model.d_model)
    with pytest.raises(ValueError, match=r"vector has shape \(7,\)"):
        steering_hooks(model, torch.randn(7), layers=0)
    with pytest.raises(ValueError, match="out of range"):
        steering_hooks(model, v, layers=model.n_layers)
    with pytest.raises(ValueError, match="out of range"):
        steering_hooks(model, v, layers=[0, -model.n_layers - 1])
    with pytest.raises(ValueError, match="empty"):
        steering_hooks(model, v, layers=0, where=Positions([]))
    with pytest.raises(ValueError, match="layers=\\[\\]"):
        steering_hooks(model, v, layers=[])
    with pytest.raises(TypeError, match="scale"):
        steering_hooks(model, v, layers=0, scale="2")
    with pytest.raises(ValueError, match="finite"):
        steering_hooks(model, v, layers=0, scale=float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        steering_hooks(model, torch.full((model.d_model,), float("nan")), layers=0)
    with pytest.raises(ValueError, match="prompt_len"):
        steering_hooks(model, v, layers=0, prompt_len=1)
    with pytest.raises(ValueError, match="Positions"):
        steering_hooks(model, torch.randn(3, model.d_model), layers=0)
    batch = model.tokenize(TEXT)
    with (
        pytest.raises(ValueError, match="out of range"),
        model.hooks(fwd_hooks=steering_hooks(model, v, layers=0, where=Positions([99]))),
    ):
        model(batch.ids)
    assert attached_hooks(model) == []
