"""Steering vectors, ``hublens.steer`` and steered generation against plain transformers."""

from __future__ import annotations

import pytest
import torch

import hublens
from hublens.hooks import ActivationStore, AllPositions, attached_hooks, capture_hooks, hook_name
from hublens.steering import (
    actadd_vector,
    generate,
    generate_rows,
    mean_difference_vector,
    row_steering_hooks,
    steering_hook_list,
    unembedding_vector,
)
from hublens.steering.checks import check_seeds, check_strengths

TEXT = "The cat sleeps on the warm mat."


def _ids(model, text):
    ids = model.tokenizer.encode(text, add_special_tokens=False)
    return [model.tokenizer.bos_token_id, *ids] if model.prepend_bos else ids


def _hf_pre_hidden(reference, ids, layer):
    """Input of decoder layer ``layer`` (resid_pre) from a plain PyTorch pre-hook."""
    seen = {}

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        seen["h"] = hidden.detach().clone()

    handle = reference.model.layers[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            reference(input_ids=ids)
    finally:
        handle.remove()
    return seen["h"]


def _hf_add_pre(reference, layer, rows, positions, prompt_len=None):
    """Plain pre-hook on HF layer ``layer`` adding rows[b, j] at positions[j] of row b."""

    def hook(module, args, kwargs):
        key_in_args = bool(args)
        hidden = args[0] if key_in_args else kwargs["hidden_states"]
        if prompt_len is not None and hidden.shape[1] < prompt_len:
            return None
        hidden = hidden.clone()
        for j, p in enumerate(positions):
            hidden[:, p] += rows[:, j]
        if key_in_args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    return reference.model.layers[layer].register_forward_pre_hook(hook, with_kwargs=True)


def _hf_add_post(reference, layer, rows, positions, prompt_len=None):
    """Plain forward hook on HF layer ``layer`` output (resid_post) adding per-row vectors."""

    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if prompt_len is not None and hidden.shape[1] < prompt_len:
            return output
        hidden = hidden.clone()
        for j, p in enumerate(positions):
            hidden[:, p] += rows[:, j]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return reference.model.layers[layer].register_forward_hook(hook)


def _hf_greedy(reference, ids, steps):
    with torch.no_grad():
        for _ in range(steps):
            nxt = reference(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], dim=1)
    return ids


def test_actadd_vector_is_padded_pair_difference_of_resid_pre(tiny):
    model, reference, _ = tiny
    layer = 1
    vec = actadd_vector(model, "The cat sleeps", "flower", layer=layer)
    a, b = _ids(model, "The cat sleeps"), _ids(model, "flower")
    assert len(a) > len(b)
    space = model.tokenizer.encode(" ", add_special_tokens=False)
    pad = space[0] if len(space) == 1 else model.tokenizer.pad_token_id
    b = b + [pad] * (len(a) - len(b))
    expected = _hf_pre_hidden(reference, torch.tensor([a, b]), layer)
    assert vec.vector.shape == (len(a), model.d_model)
    assert torch.allclose(vec.vector, expected[0] - expected[1], atol=1e-4)
    assert vec.site == "resid_pre" and vec.layer == layer and vec.kind == "actadd"
    unit = actadd_vector(model, "The cat sleeps", "flower", layer=layer, normalize="unit")
    assert torch.allclose(unit.vector.norm(), torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(unit.vector * vec.vector.norm(), vec.vector, atol=1e-3)


def test_unembedding_vector_is_difference_of_lm_head_rows(tiny):
    model, reference, _ = tiny
    a = model.tokenizer.encode(" cat", add_special_tokens=False)[0]
    b = model.tokenizer.encode(" mat", add_special_tokens=False)[0]
    vec = unembedding_vector(model, "cat", "mat", layer=0)
    weight = reference.lm_head.weight.detach()
    assert torch.allclose(vec.vector, weight[a] - weight[b], atol=1e-6)
    assert vec.meta["token_ids"] == [a, b]
    unit = unembedding_vector(model, "cat", "mat", layer=0, normalize="unit")
    assert torch.allclose(unit.vector, (weight[a] - weight[b]) / (weight[a] - weight[b]).norm())


def test_mean_difference_vector_matches_hf_hidden_states(tiny):
    model, reference, _ = tiny
    set_a = ["The cat sleeps.", "flower fleur", "3+2=5"]
    set_b = ["Le chat dort sur le tapis chaud.", "three plus two"]
    layer = 1
    vec = mean_difference_vector(model, set_a, set_b, layer=layer, batch_size=2)

    def mean_last(texts):
        rows = []
        for text in texts:
            with torch.no_grad():
                out = reference(
                    input_ids=torch.tensor([_ids(model, text)]), output_hidden_states=True
                )
            rows.append(out.hidden_states[layer + 1][0, -1])
        return torch.stack(rows).mean(0)

    expected = mean_last(set_a) - mean_last(set_b)  # (not the last layer: HF norms that one)
    assert torch.allclose(vec.vector, expected, atol=1e-4)


def test_steer_strength_zero_reproduces_unsteered_logits_exactly(tiny):
    model, _, _ = tiny
    batch = model.tokenize(TEXT)
    vec = actadd_vector(model, "The cat", "flower", layer=1)
    with torch.no_grad():
        plain = model(batch.ids)
        with hublens.steer(model, vec, scale=0.0):
            steered = model(batch.ids)
        with hublens.steer(model, unembedding_vector(model, "cat", "mat", layer=2), scale=0):
            steered_u = model(batch.ids)
    assert torch.equal(plain, steered)
    assert torch.equal(plain, steered_u)
    assert attached_hooks(model) == []


def test_steer_actadd_touches_only_first_positions_of_its_layer_and_matches_hf(tiny):
    model, reference, _ = tiny
    batch = model.tokenize(TEXT)
    layer, scale = 1, 3.0
    vec = actadd_vector(model, "The cat", "flower", layer=layer)
    k = vec.vector.shape[0]
    base, steered = ActivationStore(), ActivationStore()
    sites = [(i, s) for i in range(model.n_layers) for s in ("resid_pre", "resid_post")]

    def capture(store):
        hooks = []
        for i, s in sites:
            hooks += capture_hooks(model, store, layers=i, site=s, where=AllPositions())
        return hooks

    with torch.no_grad():
        with model.hooks(fwd_hooks=capture(base)):
            model(batch.ids)
        with hublens.steer(model, vec, scale=scale):
            with model.hooks(fwd_hooks=capture(steered)):
                logits = model(batch.ids)
    diff = steered.tensor(hook_name(layer, "resid_pre")) - base.tensor(
        hook_name(layer, "resid_pre")
    )
    assert torch.allclose(diff[0, :k], scale * vec.vector, atol=1e-3)
    assert torch.equal(diff[0, k:], torch.zeros_like(diff[0, k:]))
    for i in range(layer):  # every earlier site is untouched
        for s in ("resid_pre", "resid_post"):
            assert torch.equal(steered.tensor(hook_name(i, s)), base.tensor(hook_name(i, s)))
    handle = _hf_add_pre(reference, layer, scale * vec.vector[None], range(k))
    try:
        with torch.no_grad():
            expected = reference(input_ids=batch.ids).logits
    finally:
        handle.remove()
    assert torch.allclose(logits, expected, atol=1e-3)


def test_generate_under_steering_cached_equals_uncached_equals_hf(tiny):
    model, reference, _ = tiny
    ids = model.tokenize("The cat sleeps").ids  # within the tiny Gemma's sliding window
    vec = actadd_vector(model, "The cat", "flower", layer=1)
    hooks = steering_hook_list(model, vec, scale=40.0, prompt_len=ids.shape[1])
    cached = generate(model, ids, hooks=hooks, max_new_tokens=6, use_past_kv_cache=True)
    uncached = generate(model, ids, hooks=hooks, max_new_tokens=6, use_past_kv_cache=False)
    assert torch.equal(cached, uncached)
    k = vec.vector.shape[0]
    handle = _hf_add_pre(reference, 1, 40.0 * vec.vector[None], range(k), prompt_len=ids.shape[1])
    try:
        expected = _hf_greedy(reference, ids, 6)[:, ids.shape[1] :]
    finally:
        handle.remove()
    assert torch.equal(cached, expected)
    unsteered = generate(model, ids, max_new_tokens=6)
    assert not torch.equal(cached, unsteered)  # the steering is visible in the tokens
    assert torch.equal(unsteered, _hf_greedy(reference, ids, 6)[:, ids.shape[1] :])
    assert attached_hooks(model) == []


def test_generate_rows_each_row_equals_hf_run_alone(tiny):
    model, reference, _ = tiny
    ids = model.tokenize(TEXT).ids
    pos = ids.shape[1]
    torch.manual_seed(3)
    rows = torch.randn(3, 1, model.d_model) * 40
    rows[0] = 0.0  # the unsteered row
    new = generate_rows(
        model, ids[0], rows, [pos - 1], layer=1, site="resid_post", max_new_tokens=5
    )
    for r in range(3):
        handle = _hf_add_post(reference, 1, rows[r : r + 1], [pos - 1], prompt_len=pos)
        try:
            expected = _hf_greedy(reference, ids, 5)[:, pos:]
        finally:
            handle.remove()
        assert torch.equal(new[r : r + 1], expected), r
    assert not torch.equal(new[1], new[0]) and not torch.equal(new[2], new[0])  # visibly steered
    assert attached_hooks(model) == []


def test_seeded_sampling_is_reproducible_and_leaves_global_rng_alone(tiny_llama):
    model, _ = tiny_llama
    ids = model.tokenize(TEXT).ids.expand(4, -1)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = generate(model, ids, max_new_tokens=5, do_sample=True, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = generate(model, ids, max_new_tokens=5, do_sample=True, seed=7)
    c = generate(model, ids, max_new_tokens=5, do_sample=True, seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    with pytest.raises(ValueError, match="seed"):
        generate(model, ids, do_sample=True)


class Boom(RuntimeError):
    pass


def test_no_hook_left_after_exception_inside_steer(tiny_llama):
    model, _ = tiny_llama
    batch = model.tokenize(TEXT)
    vec = actadd_vector(model, "The cat", "flower", layer=1)
    with pytest.raises(Boom), hublens.steer(model, vec, scale=2.0):
        assert len(attached_hooks(model)) == 1
        model(batch.ids)
        raise Boom
    assert attached_hooks(model) == []

    def fail(x, hook):
        raise Boom

    with pytest.raises(Boom), hublens.steer(model, vec, scale=2.0):
        model.run_with_hooks(batch.ids, fwd_hooks=[(hook_name(2), fail)])
    assert attached_hooks(model) == []
    # ... and inside a steered generation (fails at the first decode step).
    calls = []

    def fail_on_decode(x, hook):
        calls.append(x.shape[1])
        if len(calls) > 1:
            raise Boom

    with pytest.raises(Boom):
        generate(model, batch.ids, hooks=[(hook_name(0), fail_on_decode)], max_new_tokens=3)
    assert attached_hooks(model) == []


def test_steer_nested_inside_callers_hooks_removes_only_its_own(tiny_llama):
    model, _ = tiny_llama
    batch = model.tokenize(TEXT)
    vec = actadd_vector(model, "The cat", "flower", layer=1)
    store = ActivationStore()
    with model.hooks(fwd_hooks=capture_hooks(model, store, layers=2)):
        with hublens.steer(model, vec, scale=2.0):
            assert len(attached_hooks(model)) == 2
        assert len(attached_hooks(model)) == 1  # the caller's capture, not the steering hook
        model(batch.ids)  # the caller's capture still fires
    assert len(store[hook_name(2)]) == 1
    assert attached_hooks(model) == []


def test_bad_input_gives_clear_errors(tiny_llama):
    model, _ = tiny_llama
    v = torch.randn(model.d_model)
    with (
        pytest.raises(ValueError, match=r"vector has shape \(5,\)"),
        hublens.steer(model, torch.randn(5), layers=0),
    ):
        pass
    with pytest.raises(ValueError, match="out of range"):
        actadd_vector(model, "Good", "Bad", layer=model.n_layers)
    with pytest.raises(ValueError, match="out of range"), hublens.steer(model, v, layers=99):
        pass
    with pytest.raises(TypeError, match="layer"):
        actadd_vector(model, "Good", "Bad", layer="3")
    with pytest.raises(ValueError, match="prompts_a=\\[\\]"):
        mean_difference_vector(model, [], ["x"], layer=0)
    with pytest.raises(ValueError, match="prompts_b=\\[\\]"):
        mean_difference_vector(model, ["x"], [], layer=0)
    with pytest.raises(ValueError, match="non-empty"):
        actadd_vector(model, "", "Bad", layer=0)
    with pytest.raises(ValueError, match="share their first token"):
        unembedding_vector(model, "cat", "cat", layer=0)
    with pytest.raises(TypeError, match="scale"), hublens.steer(model, v, layers=0, scale="2"):
        pass
    with pytest.raises(ValueError, match="layers=None"), hublens.steer(model, v):
        pass
    with pytest.raises(TypeError, match="strengths contains 'a'"):
        check_strengths([0, "a"])
    with pytest.raises(TypeError, match="list of numbers"):
        check_strengths("0,1")
    with pytest.raises(ValueError, match="finite"):
        check_strengths([0, float("nan")])
    with pytest.raises(ValueError, match="strengths=\\[\\]"):
        check_strengths([])
    with pytest.raises(ValueError, match="seeds=\\[\\]"):
        check_seeds([])
    with pytest.raises(ValueError, match="width|shape"):
        row_steering_hooks(model, torch.zeros(2, 1, 3), [0], layers=0)
    with pytest.raises(ValueError, match="outside the prompt"):
        row_steering_hooks(model, torch.zeros(2, 1, model.d_model), [9], layers=0, prompt_len=4)
    assert attached_hooks(model) == []
