"""Independent logit-lens computations on a plain transformers model (no hublens code)."""

from __future__ import annotations

import torch


def hidden_states(reference, ids: torch.Tensor) -> torch.Tensor:
    """(layer, pos, d) residual stream after every block for ONE row of ids (plain HF).

    ``output_hidden_states`` gives the input of every block and the final-normed output; the
    last block's raw output is taken with a forward hook on it.
    """
    captured = {}
    handle = reference.model.layers[-1].register_forward_hook(
        lambda m, a, o: captured.__setitem__("last", o[0] if isinstance(o, tuple) else o)
    )
    try:
        with torch.no_grad():
            hs = reference(input_ids=ids, output_hidden_states=True).hidden_states
    finally:
        handle.remove()
    layers = [hs[i + 1][0] for i in range(len(hs) - 2)] + [captured["last"][0]]
    return torch.stack(layers).float()


def lens_logprobs(reference, h: torch.Tensor, *, final_norm: bool = True) -> torch.Tensor:
    """Full-vocabulary fp32 log-probs of the logit lens on rows ``h`` (..., d)."""
    with torch.no_grad():
        x = reference.model.norm(h) if final_norm else h
        logits = reference.lm_head(x).float()
        cap = getattr(reference.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return torch.log_softmax(logits, dim=-1)


def token_ids(model, text: str) -> list[int]:
    """Ids of ``text`` by the tokenizer itself, with BOS first when the model prepends it."""
    tok = model.tokenizer
    ids = tok.encode(text, add_special_tokens=False)
    return [tok.bos_token_id, *ids] if model.prepend_bos else ids


def last_token_logprobs(reference, model, text: str, *, final_norm: bool = True) -> torch.Tensor:
    """(layer, vocab) lens log-probs at the last token of ``text`` (tokenized by hand here)."""
    h = hidden_states(reference, torch.tensor([token_ids(model, text)]))
    return lens_logprobs(reference, h[:, -1], final_norm=final_norm)


def first_id(tokenizer, text: str) -> int:
    """The first token id of ``text`` tokenized alone, no special tokens."""
    return tokenizer.encode(text, add_special_tokens=False)[0]


def rows_by_key(result, analysis: str) -> dict:
    """{(metric, group, layer): Row} of one analysis."""
    return {(r.metric, r.group, r.layer): r for r in result.rows if r.analysis == analysis}
