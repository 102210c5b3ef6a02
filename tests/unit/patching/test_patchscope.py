"""The patchscope readout against plain transformers: the same state written by a PyTorch hook.

The independent side finds the placeholder's position by decoding each token of the identity
prompt, reads the source's state with a forward hook on the HF decoder layer
(``reference.model.layers[l]``), writes it over the placeholder with another forward hook and
reads HF's own next-token log-probs; nothing here uses hublens's patching code for the
reference numbers.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from hublens.hooks import attached_hooks, hook_name
from hublens.patching import IDENTITY_PROMPT, PatchTarget, patchscope, patchscope_readout
from hublens.patching.generate import patchscope_generate
from tests.helpers.hf_steering import bos_ids

SOURCE = 'Français: "chat" - English: "cat"\nFrançais: "fleur" - English: "'
OTHER = "The cat sleeps on the warm mat."
IDS = torch.tensor([[5, 17, 42, 99]])


def _slot(model, identity: str = IDENTITY_PROMPT) -> int:
    """The placeholder's position, found by decoding the tokens one by one."""
    ids = bos_ids(model, identity)
    hits = [i for i, t in enumerate(ids) if model.tokenizer.decode([t]).strip() == "?"]
    assert len(hits) == 1
    return hits[0]


def _hf_state(reference, ids: list[int], layer: int, position: int) -> torch.Tensor:
    seen = {}

    def hook(module, args, output):
        seen["h"] = (output[0] if isinstance(output, tuple) else output)[0, position].clone()

    handle = reference.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            reference(input_ids=torch.tensor([ids]))
    finally:
        handle.remove()
    return seen["h"]


@contextlib.contextmanager
def _hf_patch(reference, layer: int, position: int, state: torch.Tensor, prompt_len: int = 0):
    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if hidden.shape[1] < prompt_len:
            return output  # a cached decode step
        hidden = hidden.clone()
        hidden[:, position] = state
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = reference.model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _hf_logprobs(reference, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits = reference(input_ids=torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.float(), -1)


def test_readout_equals_a_plain_pytorch_hook_at_every_layer(tiny):
    model, reference, _ = tiny
    src, ident = bos_ids(model, SOURCE), bos_ids(model, IDENTITY_PROMPT)
    slot = _slot(model)
    layers = list(range(model.n_layers))
    got = patchscope_readout(model, [SOURCE, OTHER], IDS.expand(2, -1), layers=layers, top_k=3)
    clean = _hf_logprobs(reference, ident)
    torch.testing.assert_close(got.clean[0], clean[IDS[0]], atol=1e-5, rtol=0)
    for j, layer in enumerate(layers):
        for row, text in enumerate([SOURCE, OTHER]):
            state = _hf_state(reference, bos_ids(model, text), layer, -1)
            with _hf_patch(reference, layer, slot, state):
                expected = _hf_logprobs(reference, ident)
            torch.testing.assert_close(got.logprobs[j, row], expected[IDS[0]], atol=1e-5, rtol=0)
            torch.testing.assert_close(
                got.top_logprobs[j, row], expected.topk(3).values, atol=1e-5, rtol=0
            )
            if layer < model.n_layers - 1:  # the last layer's patch is read by nothing later
                assert (expected - clean).abs().max() > 1e-3, f"layer {layer}: patch invisible"
    assert len(src) > 1


def test_patch_into_one_fixed_layer_equals_hf(tiny):
    model, reference, _ = tiny
    ident = bos_ids(model, IDENTITY_PROMPT)
    got = patchscope_readout(model, [SOURCE], IDS, layers=[2], into=0)
    state = _hf_state(reference, bos_ids(model, SOURCE), 2, -1)
    with _hf_patch(reference, 0, _slot(model), state):
        expected = _hf_logprobs(reference, ident)[IDS[0]]
    assert got.into == [0]
    torch.testing.assert_close(got.logprobs[0, 0], expected, atol=1e-5, rtol=0)


def test_rows_are_means_of_hf_probabilities_with_their_ci(tiny):
    model, reference, _ = tiny
    prompts = [SOURCE, OTHER, "Le chat dort sur le tapis"]
    targets = {"cat": ["cat", "mat", "chat"], "flower": ["flower", "warm", "tapis"]}
    result = patchscope(model, prompts, targets=targets, layers=[1], top_k=2, group="g")
    ident, slot = bos_ids(model, IDENTITY_PROMPT), _slot(model)
    clean = _hf_logprobs(reference, ident)
    values = {"p_cat": [], "p_flower": [], "top1_cat": [], "top1_flower": []}
    none = {"p_cat": [], "p_flower": []}
    for i, text in enumerate(prompts):
        state = _hf_state(reference, bos_ids(model, text), 1, -1)
        with _hf_patch(reference, 1, slot, state):
            logp = _hf_logprobs(reference, ident)
        for name, words in targets.items():
            token = model.tokenizer.encode(" " + words[i], add_special_tokens=False)[0]
            values[f"p_{name}"].append(float(logp[token].exp()))
            values[f"top1_{name}"].append(float(int(logp.argmax()) == token))
            none[f"p_{name}"].append(float(clean[token].exp()))
    rows = {r.metric: r for r in result.select("patchscope/patch", group="g")}
    for metric, column in values.items():
        assert rows[metric].mean == pytest.approx(sum(column) / 3, abs=1e-6), metric
        assert rows[metric].n == 3
    base = {r.metric: r for r in result.select("patchscope/none")}
    for metric, column in none.items():
        assert base[metric].mean == pytest.approx(sum(column) / 3, abs=1e-6), metric
    p = torch.tensor(values["p_cat"], dtype=torch.float64)
    half = 4.302652729911275 * p.std() / 3**0.5  # t(0.975, df=2), from a printed table
    assert rows["p_cat"].ci_high - rows["p_cat"].mean == pytest.approx(float(half), abs=1e-6)
    assert result.examples["patchscope/patch"][0].startswith(repr(SOURCE.splitlines()[-1]))


@pytest.fixture
def one_thread():
    """torch on one thread for the test (restored after): a fixed reduction order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_identity_state_patched_into_itself_changes_nothing_exactly(tiny, one_thread):
    """The placeholder's own state, as the patched pass computes it, written back: no change.

    Bit for bit needs one reduction order: the state is captured in a batch of one row and
    written into a batch of several, and with several threads the GEMM of a row can round
    differently with the batch's size (``one_thread``).
    """
    model, _, _ = tiny
    slot = _slot(model)
    layers = list(range(model.n_layers))
    runner = PatchTarget(model, [IDENTITY_PROMPT], torch.tensor([slot]))
    clean, own = runner.logprobs(IDS, capture=layers)
    assert own is not None
    for chosen, into in ((layers, None), ([1], 1)):  # same layer, or layer 1 into layer 1
        got = patchscope_readout(model, None, IDS, layers=chosen, states=own[chosen], into=into)
        assert torch.equal(got.clean, clean)
        for j in range(len(chosen)):
            assert torch.equal(got.logprobs[j], got.clean)
            assert torch.equal(got.top_ids[j], got.clean_top_ids)
    # read from the prompt by a full forward, the state agrees to rounding (not bit for bit)
    position = slot - len(bos_ids(model, IDENTITY_PROMPT))  # the placeholder, from the end
    read = patchscope_readout(model, [IDENTITY_PROMPT], IDS, layers=layers, position=position)
    torch.testing.assert_close(read.logprobs, clean.expand_as(read.logprobs), atol=1e-5, rtol=0)


def _hf_greedy(reference, ids: list[int], steps: int) -> torch.Tensor:
    seq = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(steps):  # full re-forwards: a prompt patch applies every step
            nxt = reference(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
    return seq[0, len(ids) :]


def test_greedy_patchscope_is_prompt_only_and_cache_invariant(tiny):
    model, reference, _ = tiny
    identity = "cat → cat; hello → hello; ?"  # placeholder last: the patch reaches the output
    ident, slot = bos_ids(model, identity), _slot(model, identity)
    unpatched = _hf_greedy(reference, ident, 4)
    changed = 0
    for text in (SOURCE, OTHER):
        for layer in range(model.n_layers):
            state = _hf_state(reference, bos_ids(model, text), layer, -1)
            with _hf_patch(reference, layer, slot, state, prompt_len=len(ident)):
                expected = _hf_greedy(reference, ident, 4)
            changed += int(not torch.equal(expected, unpatched))
            kwargs = {"layers": [layer], "identity": identity, "max_new_tokens": 4}
            cached = patchscope_generate(model, text, **kwargs)
            uncached = patchscope_generate(model, text, use_past_kv_cache=False, **kwargs)
            assert cached == uncached == {layer: model.tokenizer.decode(expected)}
    assert changed, "no patch changed the greedy tokens: the test could not see a missing hook"
    assert attached_hooks(model) == []


class Boom(RuntimeError):
    """Raised by a user's hook inside a patched forward."""


def test_no_hook_remains_after_an_exception_in_the_readout_or_generation(tiny):
    model, _, _ = tiny
    step = len(bos_ids(model, IDENTITY_PROMPT)) - _slot(model)  # the patched pass's length
    calls = []

    def fail_on_short_pass(x, hook):
        calls.append(x.shape[1])
        if x.shape[1] in (step, 1):  # the patched step (placeholder on) or a decode step
            raise Boom(hook.name)

    model.bridge.add_hook(hook_name(0), fail_on_short_pass)
    try:
        with pytest.raises(Boom):
            patchscope_readout(model, [SOURCE], IDS, layers=[1])
        with pytest.raises(Boom):
            patchscope_generate(model, SOURCE, layers=[1], max_new_tokens=3)
        assert attached_hooks(model) == [model.bridge.hook_dict[hook_name(0)].name]
    finally:
        model.bridge.reset_hooks()
    assert attached_hooks(model) == []
    assert step in calls and 1 in calls
