"""RoPE types: inverse frequencies equal transformers' for every type, and full-model parity with scaling."""

from __future__ import annotations

import pytest
import torch

import xf_load
from xf_load.rope import ROPE_INIT, standardize_rope_parameters

ROPE = {
    "default": {"rope_type": "default"},
    "linear": {"rope_type": "linear", "factor": 2.0},
    "dynamic": {"rope_type": "dynamic", "factor": 2.0},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4, "beta_fast": 16},
    "longrope": {
        "rope_type": "longrope",
        "short_factor": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.7],
        "long_factor": [2.0, 2.1, 2.2, 2.3, 2.4, 2.5, 2.6, 2.7],
        "original_max_position_embeddings": 4,
    },
    "llama3": {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 4,
    },
}


@pytest.mark.parametrize("rope_type", list(ROPE))
@pytest.mark.parametrize("seq_len", [None, 64])
def test_inverse_frequencies_match_transformers(rope_type, seq_len):
    import transformers
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    params = {**ROPE[rope_type], "rope_theta": 10000.0}
    hf_config = transformers.LlamaConfig(
        hidden_size=64, num_attention_heads=4, max_position_embeddings=8, rope_parameters=dict(params)
    )
    if rope_type == "default":
        expected = 1.0 / (10000.0 ** (torch.arange(0, 16, 2, dtype=torch.float) / 16)), 1.0
    else:
        expected = ROPE_INIT_FUNCTIONS[rope_type](hf_config, None, seq_len=seq_len)
    ours = standardize_rope_parameters(params, max_position_embeddings=8)
    inv_freq, scaling = ROPE_INIT[rope_type](ours, 16, 8, seq_len)
    torch.testing.assert_close(inv_freq, expected[0])
    assert scaling == pytest.approx(expected[1])


@pytest.mark.parametrize("rope_type", ["linear", "dynamic", "yarn", "longrope", "llama3"])
def test_scaled_rope_model_matches_transformers(rope_type, save_hf, load_hf, batch):
    # max_position_embeddings=8 < 11 tokens: dynamic and longrope switch to their long-sequence frequencies
    path = save_hf(
        "LlamaForCausalLM",
        max_position_embeddings=8,
        rope_parameters={**ROPE[rope_type], "rope_theta": 10000.0},
    )
    ours = xf_load.AutoModelForCausalLM.from_pretrained(path)
    theirs = load_hf(path, "LlamaForCausalLM")
    with torch.no_grad():
        a, b = ours(**batch).logits, theirs(**batch).logits
        short_a = ours(input_ids=batch["input_ids"][:, :4]).logits
        short_b = theirs(input_ids=batch["input_ids"][:, :4]).logits
    valid = batch["attention_mask"].bool()
    torch.testing.assert_close(a[valid], b[valid], atol=1e-5, rtol=0)
    torch.testing.assert_close(short_a, short_b, atol=1e-5, rtol=0)


def test_unknown_rope_type_and_missing_keys_name_the_field():
    with pytest.raises(ValueError, match="rope_type='wobbly' is not supported"):
        standardize_rope_parameters({"rope_type": "wobbly"}, max_position_embeddings=8)
    with pytest.raises(ValueError, match="needs low_freq_factor, high_freq_factor"):
        standardize_rope_parameters({"rope_type": "llama3", "factor": 8.0}, max_position_embeddings=8)
