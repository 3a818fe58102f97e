"""Tiny random checkpoints saved by transformers (one per family, per session), and a loader for
transformers' own bnb-quantized models, the parity oracle."""

import pytest
import torch


def _tiny_hf_model(family: str):
    import transformers

    if family == "llama":
        config = transformers.LlamaConfig(
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=96,
            max_position_embeddings=64,
        )
        return transformers.LlamaForCausalLM(config)
    if family == "gpt2":
        config = transformers.GPT2Config(
            n_embd=64, n_layer=2, n_head=4, vocab_size=96, n_positions=64, bos_token_id=0, eos_token_id=0
        )
        return transformers.GPT2LMHeadModel(config)
    raise ValueError(family)


@pytest.fixture(scope="session")
def float_checkpoint(tmp_path_factory):
    """``float_checkpoint(family)``: the directory of a float checkpoint saved by transformers."""
    made = {}

    def make(family: str):
        if family not in made:
            torch.manual_seed(0)
            path = tmp_path_factory.mktemp(f"{family}-float")
            _tiny_hf_model(family).save_pretrained(path)
            made[family] = path
        return made[family]

    return make


def _hf_load(path, **kwargs):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, **kwargs).eval()
    # xf-quant turns bitsandbytes' CPU repacking of 4-bit weights off (see xf_quant._convert); do the same
    # here so both libraries run the same kernels.
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return model


@pytest.fixture(scope="session")
def hf_load():
    """``hf_load(path, **from_pretrained_kwargs)``: transformers' model, quantized when asked."""
    return _hf_load
