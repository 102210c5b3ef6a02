"""Activation patching against plain transformers: the same state written by a PyTorch hook.

The independent side registers an ordinary forward hook on the HF decoder layer
(``reference.model.layers[l]``) that overwrites its output at the patch position with the
source prompt's output of that same layer (read by another forward hook); nothing here uses
hublens's patching or steering code for the reference numbers.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from hublens.hooks import attached_hooks, hook_name
from hublens.patching import ConceptPatching, PatchTarget, read_states, resolve_positions
from hublens.patching.generate import patched_generate
from tests.helpers.hf_steering import bos_ids
from tests.helpers.patching_words import tiny_word_table

SOURCE = 'Français: "chat" - English: "cat"\nFrançais: "fleur" - English: "'
TARGET = 'Deutsch: "Blume" - 中文: "花"\nDeutsch: "Katze" - 中文: "'
OTHER = "The cat sleeps on the warm mat."
IDS = torch.tensor([[5, 17, 42, 99]])


def _hf_layer_output(reference, ids: list[int], layer: int) -> torch.Tensor:
    """Output of HF decoder layer ``layer`` (its resid_post, before any final norm)."""
    seen = {}

    def hook(module, args, output):
        seen["h"] = (output[0] if isinstance(output, tuple) else output).detach().clone()

    handle = reference.model.layers[layer].register_forward_hook(hook)
    try:
        with torch.no_grad():
            reference(input_ids=torch.tensor([ids]))
    finally:
        handle.remove()
    return seen["h"][0]


@contextlib.contextmanager
def _hf_patch(reference, layer: int, position: int, state: torch.Tensor):
    def hook(module, args, output):
        hidden = (output[0] if isinstance(output, tuple) else output).clone()
        hidden[:, position] = state
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = reference.model.layers[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _hf_logprobs(reference, ids: list[int], token_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = reference(input_ids=torch.tensor([ids])).logits[0, -1]
    return torch.log_softmax(logits.float(), -1)[token_ids]


def _hublens_patch(model, source: str, target: str, layers: list[int], position: int = -1):
    src_pos = resolve_positions(model, [source], position, "source")
    tgt_pos = resolve_positions(model, [target], position, "target")
    states = read_states(model, [source], src_pos, layers)
    runner = PatchTarget(model, [target], tgt_pos)
    return runner.logprobs(IDS, states=states, layers=layers)[0][0], runner


@pytest.mark.parametrize("position", [-1, -3])
def test_patch_equals_a_plain_pytorch_hook_at_every_layer(tiny, position):
    model, reference, _ = tiny
    src, tgt = bos_ids(model, SOURCE), bos_ids(model, TARGET)
    for layer in range(model.n_layers):
        state = _hf_layer_output(reference, src, layer)[position]
        with _hf_patch(reference, layer, len(tgt) + position, state):
            expected = _hf_logprobs(reference, tgt, IDS[0])
        got, runner = _hublens_patch(model, SOURCE, TARGET, [layer], position)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        clean = runner.logprobs(IDS)[0][0]
        if position == -1 or layer < model.n_layers - 1:  # no later layer reads position -3
            # the patch is visible: equality alone would also pass with the hook not attached
            assert (got - clean).abs().max() > 1e-3, f"layer {layer}: the patch changed nothing"


def test_patch_over_a_layer_range_equals_hooks_on_each_layer(tiny):
    model, reference, _ = tiny
    src, tgt = bos_ids(model, SOURCE), bos_ids(model, TARGET)
    layers = [0, 1]
    states = [_hf_layer_output(reference, src, layer)[-1] for layer in layers]
    with contextlib.ExitStack() as stack:
        for layer, state in zip(layers, states, strict=True):
            stack.enter_context(_hf_patch(reference, layer, len(tgt) - 1, state))
        expected = _hf_logprobs(reference, tgt, IDS[0])
    got, _ = _hublens_patch(model, SOURCE, TARGET, layers)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_unpatched_run_equals_the_hf_model(tiny):
    model, reference, _ = tiny
    runner = PatchTarget(model, [TARGET, OTHER], resolve_positions(model, [TARGET, OTHER], -1, "t"))
    ids = IDS.expand(2, -1)
    got, _ = runner.logprobs(ids)
    for row, text in enumerate([TARGET, OTHER]):
        expected = _hf_logprobs(reference, bos_ids(model, text), IDS[0])
        torch.testing.assert_close(got[row], expected, atol=1e-5, rtol=0)
    none, _ = runner.logprobs(ids, states=torch.zeros(0, 2, model.d_model), layers=[])
    assert torch.equal(none, got)  # patching at no layer changes nothing


def test_own_state_patched_into_itself_changes_nothing_exactly(tiny):
    model, _, _ = tiny
    prompts = [TARGET, OTHER, SOURCE]
    pos = resolve_positions(model, prompts, -1, "t")
    layers = list(range(model.n_layers))
    runner = PatchTarget(model, prompts, pos)
    ids = IDS.expand(3, -1)
    clean, own = runner.logprobs(ids, capture=layers)
    assert own is not None
    for layer in layers:
        patched, _ = runner.logprobs(ids, states=own[[layer]], layers=[layer])
        assert torch.equal(patched, clean)
    everywhere, _ = runner.logprobs(ids, states=own, layers=layers)
    assert torch.equal(everywhere, clean)


def test_batched_rows_equal_each_prompt_alone(tiny):
    model, _, _ = tiny
    prompts = [TARGET, OTHER, SOURCE, TARGET + "x"]
    pos = resolve_positions(model, prompts, -1, "t")
    states = read_states(model, [SOURCE] * 4, resolve_positions(model, [SOURCE] * 4, -1, "s"), [1])
    batched, _ = PatchTarget(model, prompts, pos, batch_size=3).logprobs(
        IDS.expand(4, -1), states=states, layers=[1]
    )
    for i, text in enumerate(prompts):
        alone, _ = PatchTarget(model, [text], pos[[i]]).logprobs(
            IDS, states=states[:, [i]], layers=[1]
        )
        torch.testing.assert_close(batched[i], alone[0], atol=1e-5, rtol=0)


class Boom(RuntimeError):
    """Raised by a user's hook inside a patched forward."""


def _boom(x, hook):
    raise Boom(hook.name)


def test_no_patch_hook_remains_after_an_exception_in_a_patched_forward(tiny):
    model, _, _ = tiny
    runner = PatchTarget(model, [TARGET], resolve_positions(model, [TARGET], -1, "t"))
    states = torch.zeros(1, 1, model.d_model)
    model.bridge.add_hook(hook_name(model.n_layers - 1), _boom)  # the user's own hook
    try:
        with pytest.raises(Boom):
            runner.logprobs(IDS, states=states, layers=[0], capture=[0])
        assert attached_hooks(model) == [model.bridge.hook_dict[hook_name(model.n_layers - 1)].name]
    finally:
        model.bridge.reset_hooks()
    assert attached_hooks(model) == []


def test_no_patch_hook_remains_after_an_exception_in_generation(tiny):
    model, _, _ = tiny
    calls = []

    def fail_on_decode(x, hook):
        calls.append(x.shape[1])
        if x.shape[1] == 1:
            raise Boom("decode step")

    model.bridge.add_hook(hook_name(0), fail_on_decode)
    try:
        with pytest.raises(Boom):
            patched_generate(model, SOURCE, TARGET, layers=1, max_new_tokens=3)
    finally:
        model.bridge.reset_hooks()
    assert 1 in calls and attached_hooks(model) == []


def test_patched_generation_is_prompt_only_and_cache_invariant(tiny):
    model, reference, _ = tiny
    src, tgt = bos_ids(model, SOURCE), bos_ids(model, TARGET)
    layer = 1
    state = _hf_layer_output(reference, src, layer)[-1]

    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if hidden.shape[1] < len(tgt):
            return output  # a cached decode step: not the prompt pass
        hidden = hidden.clone()
        hidden[:, len(tgt) - 1] = state
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = reference.model.layers[layer].register_forward_hook(hook)
    try:
        seq = torch.tensor([tgt])
        with torch.no_grad():
            for _ in range(5):  # full re-forwards: the patch applies to the prompt every step
                nxt = reference(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
                seq = torch.cat([seq, nxt], dim=1)
    finally:
        handle.remove()
    expected = seq[:, len(tgt) :]
    cached = patched_generate(model, SOURCE, TARGET, layers=layer, max_new_tokens=5)
    uncached = patched_generate(
        model, SOURCE, TARGET, layers=layer, max_new_tokens=5, use_past_kv_cache=False
    )
    assert torch.equal(cached.cpu(), expected) and torch.equal(uncached.cpu(), expected)
    assert attached_hooks(model) == []


def test_concept_patching_rows_equal_hf_patching_by_hand(tiny, words):
    """The table's p_X_D at one layer equals the mean over pairs of HF-patched probabilities."""
    model, reference, _ = tiny
    layer = 1
    result = ConceptPatching(
        source="fr",
        source_out="en",
        target_in="de",
        target="zh",
        layers=[layer],
        n_items=4,
        few_shot=1,
        mean_sources=[],
        controls=False,
        progress=False,
    ).run(model, words)
    rows = {r.metric: r for r in result.select("concept_patching/patch", group="fr:en->de:zh")}
    # rebuild the prompts independently (the Wendler format) and patch by hand
    items = list(words)
    n = len(items)
    values = []
    for k in range(n):
        x, y = items[k], items[(k + n // 2) % n]
        demo = next(items[(k + s) % n] for s in range(1, n) if items[(k + s) % n] not in (x, y))
        src = (
            f'Français: "{demo["fr"]}" - English: "{demo["en"]}"\n'
            f'Français: "{x["fr"]}" - English: "'
        )
        tgt = f'Deutsch: "{demo["de"]}" - 中文: "{demo["zh"]}"\nDeutsch: "{y["de"]}" - 中文: "'
        s_ids, t_ids = bos_ids(model, src), bos_ids(model, tgt)
        state = _hf_layer_output(reference, s_ids, layer)[-1]
        first = model.tokenizer.encode(x["zh"], add_special_tokens=False)[0]
        with _hf_patch(reference, layer, len(t_ids) - 1, state):
            values.append(float(_hf_logprobs(reference, t_ids, torch.tensor([first])).exp()))
    assert rows["p_X_D"].n == n
    assert rows["p_X_D"].mean == pytest.approx(sum(values) / n, abs=1e-6)


@pytest.fixture(scope="module")
def words():
    """A user word table whose first tokens differ under the tiny tokenizer."""
    return tiny_word_table()


def test_many_runs_in_one_batch_equal_each_run_alone(tiny):
    """Rows patched at different layers share forwards; each equals its run done alone."""
    model, _, _ = tiny
    prompts = [TARGET, OTHER, TARGET + "x"]
    pos = resolve_positions(model, prompts, -1, "t")
    src_pos = resolve_positions(model, [SOURCE, OTHER, SOURCE], -1, "s")
    layers = list(range(model.n_layers))
    states = read_states(model, [SOURCE, OTHER, SOURCE], src_pos, layers)
    runner = PatchTarget(model, prompts, pos)
    ids = IDS.expand(3, -1)
    runs = [(states[[layer]], [layer]) for layer in layers] + [(states[[0, 2]], [0, 2])]
    together = runner.logprobs_runs(ids, runs, max_rows=4)  # chunks of runs, uneven split
    for (run_states, run_layers), got in zip(runs, together, strict=True):
        alone, _ = runner.logprobs(ids, states=run_states, layers=run_layers)
        torch.testing.assert_close(got, alone, atol=1e-5, rtol=0)
    assert not torch.allclose(together[0], together[-1])


def _hand_prompts(items, k, a, b, c, d):
    """The k-th pair's source (a -> b) and target (c -> d) prompts, one demonstration."""
    names = {"fr": "Français", "en": "English", "de": "Deutsch", "zh": "中文", "es": "Español"}
    n = len(items)
    x, y = items[k], items[(k + n // 2) % n]
    demo = next(items[(k + s) % n] for s in range(1, n) if items[(k + s) % n] not in (x, y))

    def prompt(item, src, tgt):
        return (
            f'{names[src]}: "{demo[src]}" - {names[tgt]}: "{demo[tgt]}"\n'
            f'{names[src]}: "{item[src]}" - {names[tgt]}: "'
        )

    return x, y, prompt(x, a, b), prompt(y, c, d)


def test_mean_patch_and_controls_equal_hf_patching_by_hand(tiny, words):
    """mean_patch writes the mean of HF states over source languages; placebo is norm-matched."""
    model, reference, _ = tiny
    layer = 0
    result = ConceptPatching(
        source="fr",
        target_in="de",
        layers=[layer],
        n_items=4,
        few_shot=1,
        mean_sources=["fr", "es"],
        progress=False,
    ).run(model, words)
    items = list(words)
    mean_values, unrelated_values = [], []
    for k in range(len(items)):
        x, y, _, tgt = _hand_prompts(items, k, "fr", "en", "de", "zh")
        states = [
            _hf_layer_output(
                reference, bos_ids(model, _hand_prompts(items, k, a, "en", "de", "zh")[2]), layer
            )[-1]
            for a in ("fr", "es")
        ]
        t_ids = bos_ids(model, tgt)
        first = torch.tensor([model.tokenizer.encode(y["zh"], add_special_tokens=False)[0]])
        with _hf_patch(reference, layer, len(t_ids) - 1, torch.stack(states).mean(0)):
            mean_values.append(float(_hf_logprobs(reference, t_ids, first).exp()))
        from hublens.patching.concept import UNRELATED_PROMPTS

        other = _hf_layer_output(reference, bos_ids(model, UNRELATED_PROMPTS[k % 4]), layer)[-1]
        with _hf_patch(reference, layer, len(t_ids) - 1, other):
            unrelated_values.append(float(_hf_logprobs(reference, t_ids, first).exp()))
    mean_row = result.select("concept_patching/mean_patch", metric="p_Y_D")[0]
    unrelated_row = result.select("concept_patching/unrelated", metric="p_Y_D")[0]
    assert mean_row.mean == pytest.approx(sum(mean_values) / 4, abs=1e-6)
    assert unrelated_row.mean == pytest.approx(sum(unrelated_values) / 4, abs=1e-6)
    assert {a.split("/")[1] for a in result.analyses} == {
        "patch",
        "mean_patch",
        "unrelated",
        "placebo",
        "none",
    }


def test_placebo_moves_the_target_as_far_as_the_patch_along_a_random_direction():
    from hublens.patching.concept import ConceptPatching as CP

    torch.manual_seed(0)
    base, source = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    placebo = CP(seed=3)._placebo(base, source, [4, 7])
    moved = (placebo - base).norm(dim=-1)
    torch.testing.assert_close(moved, (source - base).norm(dim=-1))
    unit = (placebo - base) / moved[..., None]
    # one random direction per layer (up to sign), not the patch's own direction
    assert torch.allclose(unit[0].abs(), unit[0, :1].abs().expand(5, -1), atol=1e-5)
    cosine = torch.nn.functional.cosine_similarity(unit, source - base, dim=-1)
    assert cosine.abs().max() < 0.99
