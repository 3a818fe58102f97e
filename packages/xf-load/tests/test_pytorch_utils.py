"""pytorch_utils against transformers' (the same names and results) and their error cases."""

from __future__ import annotations

import pytest
import torch
import transformers.pytorch_utils as hf
from torch import nn

from xf_core.errors import XfValueError
from xf_load import pytorch_utils as ours


@pytest.mark.parametrize("dim", [0, 1])
@pytest.mark.parametrize("bias", [True, False])
def test_prune_linear_layer_equals_transformers(dim, bias):
    torch.manual_seed(0)
    layer = nn.Linear(6, 8, bias=bias)
    index = torch.tensor([0, 2, 5])
    got, want = ours.prune_linear_layer(layer, index, dim), hf.prune_linear_layer(layer, index, dim)
    assert got.weight.shape == want.weight.shape and got.weight.requires_grad
    torch.testing.assert_close(got.weight, want.weight)
    if bias:
        torch.testing.assert_close(got.bias, want.bias)
    x = torch.randn(2, got.in_features)
    torch.testing.assert_close(got(x), want(x))
    with pytest.raises(XfValueError, match="dim must be 0"):
        ours.prune_linear_layer(layer, index, 2)


def test_apply_chunking_to_forward_equals_unchunked_and_transformers():
    torch.manual_seed(0)
    ff = nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Linear(16, 4))
    a, b = torch.randn(2, 12, 4), torch.randn(2, 12, 4)

    def fn(x, y):
        return ff(x) + y

    full = fn(a, b)
    for chunk in (0, 1, 3, 12):
        torch.testing.assert_close(ours.apply_chunking_to_forward(fn, chunk, 1, a, b), full)
        torch.testing.assert_close(hf.apply_chunking_to_forward(fn, chunk, 1, a, b), full)
    with pytest.raises(XfValueError, match="not a multiple of chunk_size=5"):
        ours.apply_chunking_to_forward(fn, 5, 1, a, b)
    with pytest.raises(XfValueError, match="takes 2 arguments but 1"):
        ours.apply_chunking_to_forward(fn, 3, 1, a)
    with pytest.raises(XfValueError, match="same size along dim 1"):
        ours.apply_chunking_to_forward(fn, 3, 1, a, b[:, :6])


def test_id_tensor_storage_meshgrid_isin_move():
    base = torch.zeros(10)
    view, other = base[2:5], torch.zeros(10)
    assert ours.id_tensor_storage(view) == ours.id_tensor_storage(base) == hf.id_tensor_storage(base)
    assert ours.id_tensor_storage(other) != ours.id_tensor_storage(base)
    emb = nn.Embedding(5, 3)
    head = nn.Linear(3, 5, bias=False)
    head.weight = emb.weight
    assert ours.id_tensor_storage(head.weight) == ours.id_tensor_storage(emb.weight)

    x, y = torch.arange(3), torch.arange(4)
    for got, want in zip(ours.meshgrid(x, y), torch.meshgrid(x, y, indexing="ij")):
        torch.testing.assert_close(got, want)
    assert ours.meshgrid(x, y, indexing="xy")[0].shape == (4, 3)

    ids = torch.tensor([[1, 5, 7], [2, 7, 9]])
    assert ours.isin_mps_friendly(ids, torch.tensor([7, 9])).tolist() == [
        [False, False, True],
        [False, True, True],
    ]
    assert ours.isin_mps_friendly(ids, 5).tolist() == [[False, True, False], [False, False, False]]

    moved = ours.move_to_device({"a": [torch.ones(1), ("x", torch.zeros(1))], "b": 3}, "meta")
    assert moved["a"][0].device.type == "meta" and moved["a"][1][0] == "x" and moved["b"] == 3


def test_compile_compatible_lru_cache_caches_outside_compile():
    calls = []

    class Rope:
        @ours.compile_compatible_method_lru_cache(maxsize=4)
        def table(self, n):
            calls.append(n)
            return torch.arange(n)

    rope = Rope()
    rope.table(3)
    rope.table(3)
    assert calls == [3]
