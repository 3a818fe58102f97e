"""Masks follow one rule for every cache kind; eager and SDPA attention agree, with GQA and masks."""

from __future__ import annotations

import pytest
import torch

from xf_load.attention import ATTENTION, get_attention
from xf_load.masks import causal_mask, padding_mask


def _brute(pad, positions, kv_length, window):
    B = pad.shape[0]
    out = torch.zeros(B, 1, len(positions), kv_length, dtype=torch.bool)
    for b in range(B):
        for i, p in enumerate(positions.tolist()):
            for j in range(kv_length):
                ok = j <= p and (window is None or j > p - window)
                ok = ok and (j >= pad.shape[1] or bool(pad[b, j]))
                out[b, 0, i, j] = ok
    return out


@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize(
    ("past", "T", "kv_length"),
    [(0, 6, 6), (5, 1, 6), (4, 2, 6), (3, 1, 10)],  # prefill, decode, chunk, static cache (10 slots, 4 used)
)
def test_causal_mask_rule(window, past, T, kv_length):
    pad = torch.ones(2, max(past + T, 6), dtype=torch.long)
    pad[1, :2] = 0
    positions = torch.arange(past, past + T)
    mask = causal_mask(pad[:, : past + T], positions, kv_length, sliding_window=window, allow_none=False)
    expected = _brute(pad[:, : past + T], positions, kv_length, window)
    assert mask.dtype == torch.bool
    assert torch.equal(mask.expand_as(expected), expected)


def test_causal_mask_is_none_only_when_plain_causal_is_exact():
    positions = torch.arange(0, 5)
    assert causal_mask(None, positions, 5) is None
    assert causal_mask(torch.ones(1, 5), positions, 5) is None
    assert causal_mask(None, torch.tensor([5]), 6) is None  # one new token sees every cached one
    assert causal_mask(None, positions, 5, sliding_window=2) is not None
    assert causal_mask(None, torch.tensor([5]), 6, allow_none=False) is not None
    assert padding_mask(torch.ones(2, 4)) is None
    assert padding_mask(torch.tensor([[1, 1, 0]])).shape == (1, 1, 3, 3)


@pytest.mark.parametrize("with_mask", [False, True])
def test_eager_and_sdpa_agree_with_gqa(with_mask):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 5, 8, generator=g)
    k = torch.randn(2, 2, 5, 8, generator=g)
    v = torch.randn(2, 2, 5, 8, generator=g)
    pad = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]])
    mask = causal_mask(pad, torch.arange(5), 5) if with_mask else None
    a = ATTENTION["eager"](q, k, v, mask, scale=8**-0.5, is_causal=True)
    b = ATTENTION["sdpa"](q, k, v, mask, scale=8**-0.5, is_causal=True)
    assert a.shape == (2, 5, 4, 8)
    rows = slice(None) if not with_mask else slice(1, None)  # row 0 of sequence 1 sees nothing
    torch.testing.assert_close(a[:, rows], b[:, rows], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="attn_implementation='flash'"):
        get_attention("flash")
