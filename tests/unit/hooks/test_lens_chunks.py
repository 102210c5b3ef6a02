"""LogitLens readout over several vocabulary chunks equals a full log_softmax."""

from __future__ import annotations

import torch

from hublens.hooks import LogitLens


def test_chunked_readout_equals_full_log_softmax():
    torch.manual_seed(0)
    weight = torch.randn(3000, 16)  # 3 chunks of 1024 columns at 4 rows
    h = torch.randn(2, 2, 16) * 3
    lens = LogitLens(weight=weight, max_chunk_elements=2048)
    ids = torch.tensor([5, 1500, 2999])
    readout = lens.readout(h, ids, top_k=4)
    full = torch.log_softmax(h @ weight.T, dim=-1)
    torch.testing.assert_close(readout.target_logprobs, full[..., ids], atol=1e-5, rtol=1e-5)
    top = full.topk(4, dim=-1)
    torch.testing.assert_close(readout.top_logprobs, top.values, atol=1e-5, rtol=1e-5)
    assert torch.equal(readout.top_ids, top.indices)
    torch.testing.assert_close(readout.logsumexp, torch.logsumexp(h @ weight.T, dim=-1))
