"""No hook leaks after exceptions; capture options; runtime shape checks are on."""

from __future__ import annotations

import inspect

import jaxtyping
import numpy as np
import pytest
import torch

from hublens.hooks import (
    ActivationStore,
    CaptureHook,
    LastToken,
    MaskedMean,
    Positions,
    attached_hooks,
    capture_hooks,
    hook_name,
    lens_hooks,
    steering_hooks,
    validate_layers,
)


class Boom(RuntimeError):
    pass


def _raise(x, hook):
    raise Boom(hook.name)


def test_no_hook_left_after_exception_in_hooks_context(tiny_llama):
    model, _ = tiny_llama
    batch = model.tokenize("The cat sleeps.")
    store: dict = {}
    hooks = capture_hooks(model, ActivationStore()) + lens_hooks(model, store, token_ids=[1])
    hooks += steering_hooks(model, torch.ones(model.d_model), layers=1)
    hooks.append((hook_name(2), _raise))
    with pytest.raises(Boom), model.hooks(fwd_hooks=hooks):
        assert len(attached_hooks(model)) == model.n_layers
        model(batch.ids)
    assert attached_hooks(model) == []


def test_no_hook_left_after_exception_in_run_with_hooks(tiny_llama):
    model, _ = tiny_llama
    batch = model.tokenize("The cat sleeps.")
    with pytest.raises(Boom):
        model.run_with_hooks(
            batch.ids, fwd_hooks=capture_hooks(model, ActivationStore()) + [(hook_name(1), _raise)]
        )
    assert attached_hooks(model) == []


def test_no_hook_left_after_exception_in_generate(tiny_llama):
    model, _ = tiny_llama
    batch = model.tokenize("The cat sleeps.")
    calls = []

    def fail_on_decode(x, hook):
        calls.append(x.shape[1])
        if len(calls) > 1:
            raise Boom("decode step")

    hooks = steering_hooks(
        model, torch.ones(model.d_model), layers=0, prompt_len=batch.ids.shape[1]
    )
    with pytest.raises(Boom), model.hooks(fwd_hooks=hooks + [(hook_name(1), fail_on_decode)]):
        model.generate(batch.ids, max_new_tokens=4, do_sample=False, verbose=False)
    assert attached_hooks(model) == []


def test_attached_hooks_sees_a_permanent_leak(tiny_llama):
    """The leak detector itself can fail: a hook added without a context is reported."""
    model, _ = tiny_llama
    model.add_hook(hook_name(0), lambda x, hook: None)
    try:
        assert attached_hooks(model) != []
    finally:
        model.reset_hooks()
    assert attached_hooks(model) == []


def test_capture_options(tiny_llama):
    model, reference = tiny_llama
    batch = model.tokenize(["The cat sleeps on the mat.", "猫"])
    store = ActivationStore()
    where = LastToken(batch.lengths)
    hooks = capture_hooks(
        model, store, layers=[0, -1], where=where, to_cpu=True, dtype=torch.float16
    )
    with torch.no_grad(), model.hooks(fwd_hooks=hooks):
        model(batch.ids, attention_mask=batch.attention_mask)
    assert sorted(store) == [hook_name(0), hook_name(model.n_layers - 1)]
    got = store.tensor(hook_name(0))
    assert got.dtype == torch.float16 and got.device.type == "cpu" and not got.requires_grad
    with torch.no_grad():
        hs = reference(
            input_ids=batch.ids, attention_mask=batch.attention_mask, output_hidden_states=True
        ).hidden_states[1]
    expected = hs[torch.arange(2), batch.lengths - 1]
    assert torch.allclose(got.float(), expected, atol=1e-2)


def test_masked_mean_and_positions_selectors():
    x = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 1]])
    mean = MaskedMean(mask).gather(x)
    assert torch.equal(mean[0], x[0, :2].mean(0))
    assert torch.equal(mean[1], x[1, 1:].mean(0))
    got = Positions([0, -1]).gather(x)
    assert torch.equal(got[:, 0], x[:, 0]) and torch.equal(got[:, 1], x[:, 3])
    per_row = Positions(torch.tensor([[1], [2]])).gather(x)
    assert torch.equal(per_row[:, 0], torch.stack([x[0, 1], x[1, 2]]))
    with pytest.raises(ValueError, match="marks no position"):
        MaskedMean(torch.tensor([[1, 0, 0, 0], [0, 0, 0, 0]])).gather(x)
    with pytest.raises(ValueError, match="lengths"):
        LastToken(torch.tensor([5, 1])).gather(x)


def test_capture_rejects_nan(tiny_llama):
    model, _ = tiny_llama
    hook = CaptureHook(ActivationStore())
    with pytest.raises(FloatingPointError, match="NaN"):
        hook(torch.full((1, 2, model.d_model), float("nan")), model.hook_dict[hook_name(0)])


def test_layer_validation(tiny_llama):
    model, _ = tiny_llama
    assert validate_layers(model, None) == list(range(model.n_layers))
    assert validate_layers(model, [-1, 0, 0]) == [0, model.n_layers - 1]
    with pytest.raises(ValueError, match=f"valid layers are 0..{model.n_layers - 1}"):
        capture_hooks(model, ActivationStore(), layers=[model.n_layers])
    with pytest.raises(TypeError, match="layers contains"):
        validate_layers(model, [True])


def test_layer_validation_takes_numpy_integers_and_refuses_floats(tiny_llama):
    model, _ = tiny_llama
    n = model.n_layers
    assert validate_layers(model, np.int64(1)) == [1]
    assert validate_layers(model, [np.int32(0), np.int64(-1)]) == [0, n - 1]
    assert validate_layers(model, np.arange(n)) == list(range(n))
    # The test run type-checks arguments first (beartype names the parameter); the function's
    # own check, which users without beartype meet, is the unwrapped one.
    own = inspect.unwrap(validate_layers)
    for bad in ([1.0], [np.float64(2.0)], [np.bool_(True)], np.array([0.5]), 1.0, "1"):
        with pytest.raises(TypeError, match="layers"):
            validate_layers(model, bad)
        with pytest.raises(TypeError, match="layers.*ints in"):
            own(model, bad)


def test_jaxtyping_shapes_are_checked_at_run_time():
    """The test run instruments hublens with jaxtyping + beartype (pyproject addopts)."""
    with pytest.raises(jaxtyping.TypeCheckError):
        LastToken().gather(torch.zeros(2, 3))  # not (batch, pos, d_model)
