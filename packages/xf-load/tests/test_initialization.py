"""Initialisers: torch's numerics, and they skip None, meta and already-loaded tensors; no_init_weights."""

from __future__ import annotations

import pytest
import torch
import transformers.initialization as hf_init
from torch import nn

from xf_load import initialization as init

CASES = [
    ("normal_", {"mean": 0.5, "std": 2.0}),
    ("uniform_", {"a": -1.0, "b": 3.0}),
    ("trunc_normal_", {"std": 0.02}),
    ("xavier_uniform_", {"gain": 1.5}),
    ("xavier_normal_", {}),
    ("kaiming_uniform_", {"a": 5**0.5}),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("orthogonal_", {}),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES)
def test_same_numbers_as_transformers_and_skips(name, kwargs):
    ours, theirs = torch.empty(6, 4), torch.empty(6, 4)
    getattr(init, name)(ours, **kwargs, generator=torch.Generator().manual_seed(0))
    getattr(hf_init, name)(theirs, **kwargs, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)

    loaded = torch.full((6, 4), 7.0)
    init.mark_initialized(loaded)
    assert getattr(init, name)(loaded, **kwargs) is loaded and bool((loaded == 7).all())
    assert getattr(init, name)(None, **kwargs) is None
    getattr(init, name)(torch.empty(6, 4, device="meta"), **kwargs)  # nothing to do, no error


def test_constant_initialisers_and_the_flag():
    t = torch.empty(3)
    assert init.zeros_(t).tolist() == [0, 0, 0] and init.ones_(t).tolist() == [1, 1, 1]
    assert init.constant_(t, 2.5).tolist() == [2.5] * 3 and init.copy_(t, torch.arange(3.0)).tolist() == [
        0,
        1,
        2,
    ]
    init.mark_initialized(t)
    init.zeros_(t)
    assert t.tolist() == [0, 1, 2] and t._is_hf_initialized


def test_guard_torch_init_functions_protects_loaded_weights():
    layer = nn.Linear(4, 3)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    init.mark_initialized(layer.weight)
    before_bias = layer.bias.clone()
    with init.guard_torch_init_functions():
        layer.reset_parameters()  # torch's kaiming_uniform_ / uniform_ under the guard
    assert bool((layer.weight == 1).all())  # loaded: kept
    assert not torch.equal(layer.bias, before_bias)  # not loaded: re-initialised
    layer.reset_parameters()  # outside the guard torch's functions are back
    assert not bool((layer.weight == 1).all())


def test_no_init_weights_skips_the_family_init_table():
    from xf_load import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=32
    )
    calls = []
    original = LlamaForCausalLM._init_weights

    class Counting(LlamaForCausalLM):
        def _init_weights(self, module):
            calls.append(module)
            original(self, module)

    with init.no_init_weights():
        Counting(config)
    assert calls == []
    Counting(config)
    assert calls  # outside the block the table runs again
