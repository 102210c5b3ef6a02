"""Steering-vector validation: refused before any hook is attached, with errors naming the fix."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hublens
from hublens.hooks import SteerHook, attached_hooks, hook_name, steering_hooks
from hublens.steering import actadd_vector, row_steering_hooks, steering_hook_list
from tests.helpers.hf_steering import add_post


@pytest.mark.parametrize(
    ("dtype", "match"),
    [(torch.complex64, "complex64"), (torch.bool, "bool"), (torch.int64, "int64")],
)
def test_complex_bool_and_integer_vectors_are_refused(tiny_llama, dtype, match):
    model, _ = tiny_llama
    vector = torch.ones(model.d_model, dtype=dtype)
    with pytest.raises(TypeError, match=rf"vector has dtype torch\.{match}.*\.float\(\)"):
        steering_hooks(model, vector, layers=0)
    with (
        pytest.raises(TypeError, match="real floating point"),
        hublens.steer(model, vector, layers=0),
    ):
        pass
    with pytest.raises(TypeError, match="real floating point"):
        row_steering_hooks(model, vector.reshape(1, 1, -1), [0], layers=0)
    assert attached_hooks(model) == []


def test_non_finite_and_overflowing_vectors_are_refused(tiny_llama):
    model, _ = tiny_llama
    with pytest.raises(ValueError, match="NaN or infinite"):
        steering_hooks(model, torch.full((model.d_model,), float("inf")), layers=0)
    huge = torch.full((model.d_model,), 1e38)  # finite itself; its squared norm is not
    with pytest.raises(ValueError, match="overflows.*smaller vector or scale"):
        steering_hooks(model, huge, layers=0)
    big = torch.full((model.d_model,), 1e18)
    steering_hooks(model, big, layers=0)  # fine alone ...
    with pytest.raises(ValueError, match="overflows"):
        steering_hooks(model, big, layers=0, scale=1e3)  # ... not once scaled
    with (
        pytest.raises(ValueError, match="overflows"),
        hublens.steer(model, big, layers=0, scale=1e3),
    ):
        pass
    with pytest.raises(ValueError, match="overflows"):
        row_steering_hooks(model, huge.reshape(1, 1, -1), [0], layers=0)
    assert attached_hooks(model) == []


def test_vectors_that_require_grad_are_refused(tiny_llama):
    model, _ = tiny_llama
    vector = torch.randn(model.d_model, requires_grad=True)
    with pytest.raises(ValueError, match=r"requires grad.*vector\.detach\(\)"):
        steering_hooks(model, vector, layers=0)
    with pytest.raises(ValueError, match="requires grad"), hublens.steer(model, vector, layers=0):
        pass
    steering_hooks(model, vector.detach(), layers=0)  # the fix works


def test_numpy_integer_layers_are_accepted_and_steer_the_same(tiny):
    model, reference, _ = tiny
    ids = model.tokenize("The cat sleeps on the warm mat.").ids
    vector = torch.randn(model.d_model)
    hooks = steering_hooks(model, vector, layers=np.int64(1), scale=2.0)
    assert [name for name, _ in hooks] == [hook_name(1)]
    assert [n for n, _ in steering_hooks(model, vector, layers=[np.int32(0), 2])] == [
        hook_name(0),
        hook_name(2),
    ]
    with torch.no_grad():
        with hublens.steer(model, vector, layers=np.int64(1), scale=2.0):
            got = model(ids)
        with add_post(
            reference,
            1,
            (2.0 * vector)[None, None].expand(1, ids.shape[1], -1),
            range(ids.shape[1]),
        ):
            expected = reference(input_ids=ids).logits
        assert not torch.allclose(got, model(ids), atol=1e-3)  # the steering is visible
    assert torch.allclose(got, expected, atol=1e-4)
    vec = actadd_vector(model, "The cat", "flower", layer=np.int64(1))
    assert vec.layer == 1 and isinstance(vec.layer, int)
    assert steering_hook_list(model, vec, layers=np.int64(2))[0][0] == hook_name(2, "resid_pre")


def test_bad_scale_and_relative_zero_direction(tiny_llama):
    model, _ = tiny_llama
    v = torch.randn(model.d_model)
    with pytest.raises(TypeError, match="scale"):
        SteerHook(v, scale="2")
    steering_hooks(model, v, layers=0, scale=np.float64(2.0))  # a numpy float is a float
    with pytest.raises(ValueError, match="non-zero direction"):
        SteerHook(torch.zeros(model.d_model), relative=True)
