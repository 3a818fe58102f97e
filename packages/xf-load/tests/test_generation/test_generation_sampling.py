"""The sync-free sampler: the same draws as ``torch.multinomial`` under the same seed, no multinomial in the
decode loop, and invalid scores still reported (once, after the loop)."""

from __future__ import annotations

import pytest
import torch

from xf_core.errors import XfValueError
from xf_load.generation import sample
from xf_load.generation._decode import invalid_rows


def _probs(rows: int, vocab: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(rows, vocab, generator=g) * 3).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sample_draws_what_multinomial_draws_under_the_same_seed(dtype):
    scores = _probs(256, 1000, seed=0, dtype=dtype)
    probs = scores.softmax(-1)
    g = torch.Generator().manual_seed(11)
    want = torch.multinomial(probs, 1, generator=g).squeeze(1)
    g = torch.Generator().manual_seed(11)
    assert torch.equal(sample(scores, do_sample=True, generator=g), want)
    torch.manual_seed(3)  # the global RNG, as transformers' seeded sampling uses it
    want = torch.multinomial(probs, 1).squeeze(1)
    torch.manual_seed(3)
    assert torch.equal(sample(scores, do_sample=True), want)


def test_sample_follows_the_distribution_and_never_draws_a_removed_token():
    scores = torch.tensor([0.5, 0.3, 0.2, 0.0]).log().expand(20000, 4)  # last token at -inf
    tokens = sample(scores, do_sample=True, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=4).float() / tokens.numel()
    torch.testing.assert_close(freq, torch.tensor([0.5, 0.3, 0.2, 0.0]), atol=0.015, rtol=0)
    assert torch.equal(sample(scores[:3], do_sample=False), torch.zeros(3, dtype=torch.long))


def test_invalid_rows_flags_what_multinomial_would_refuse():
    scores = torch.zeros(4, 5)
    scores[1, 2] = float("nan")
    scores[2, 0] = float("inf")
    scores[3] = float("-inf")
    assert invalid_rows(scores).tolist() == [False, True, True, True]


def test_the_sampling_loop_does_not_call_multinomial(toy, monkeypatch):
    model = toy()
    ids = torch.randint(0, 97, (3, 5), generator=torch.Generator().manual_seed(0))
    torch.manual_seed(5)
    want = model.generate(ids, max_new_tokens=6, do_sample=True, top_k=5)

    def refuse(*args, **kwargs):
        raise AssertionError("torch.multinomial syncs with the host; the sampling loop must not call it")

    monkeypatch.setattr(torch, "multinomial", refuse)
    torch.manual_seed(5)
    assert torch.equal(model.generate(ids, max_new_tokens=6, do_sample=True, top_k=5), want)
    torch.manual_seed(5)
    compiled = model.generate(ids, max_new_tokens=6, do_sample=True, top_k=5, compile={"backend": "eager"})
    assert torch.equal(compiled, want)


def test_sampling_from_invalid_scores_raises_after_the_loop(toy):
    model = toy()
    ids = torch.randint(0, 97, (3, 5), generator=torch.Generator().manual_seed(0))

    def nan_in_row_1(input_ids, scores):
        scores = scores.clone()
        scores[1, 0] = float("nan")
        return scores

    with pytest.raises(XfValueError, match=r"rows \[1\].*remove_invalid_values"):
        model.generate(ids, max_new_tokens=3, do_sample=True, logits_processor=[nan_in_row_1])
    # Greedy decoding never checked (transformers does not either).
    assert model.generate(ids, max_new_tokens=3, logits_processor=[nan_in_row_1]).shape == (3, 8)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="host-device syncs exist only with a CUDA device")
def test_sample_makes_no_host_device_sync_on_cuda():
    scores = _probs(8, 32000, seed=0).cuda()
    g = torch.Generator(device="cuda").manual_seed(0)
    sample(scores, do_sample=True, generator=g)  # warm-up: first-call allocations may sync
    torch.cuda.set_sync_debug_mode("error")
    try:
        tokens = sample(scores, do_sample=True, generator=g)
        bad = invalid_rows(scores)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert tokens.shape == (8,) and not bad.any()
