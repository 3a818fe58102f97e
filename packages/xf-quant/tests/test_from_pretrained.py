"""End to end through xf-load's from_pretrained on tiny random Llama and GPT-2 checkpoints: parity with
transformers' bnb models, closeness to the float model, save/reload both ways, generate, skip lists,
memory, dequantize."""

import json

import pytest
import torch
from safetensors import safe_open
from torch import nn
from transformers import BitsAndBytesConfig as HFBitsAndBytesConfig

from xf_load.auto import AutoModelForCausalLM
from xf_quant import BitsAndBytesConfig, is_bnb_module

KINDS = {
    "nf4": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4"},
    "fp4": {"load_in_4bit": True, "bnb_4bit_quant_type": "fp4"},
    "nf4-double": {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True},
    "int8": {"load_in_8bit": True},
}
# Tolerance against the float model, as the relative L2 error of the logits. A 4-bit code keeps about 3
# significant bits of each weight (blockwise absmax scale, 64 weights a block), int8 about 7 bits (one scale
# per row, activations rounded to int8 too); through two blocks of random weights that measures ~0.08-0.18
# (4-bit) and ~0.01 (int8). The bounds leave ~50% headroom yet fail if a layer is left unquantized with the
# wrong weights, transposed, or scaled wrong (errors of order 1).
FLOAT_TOL = {"nf4": 0.25, "fp4": 0.3, "nf4-double": 0.25, "int8": 0.03}
# Against transformers the same kernels run on the same packed bytes: equal up to float summation order.
HF_ATOL = 1e-6


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def family(request, float_checkpoint):
    """(family name, float checkpoint dir, input ids, float logits of xf's model)."""
    path = float_checkpoint(request.param)
    ids = torch.randint(0, 96, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = AutoModelForCausalLM.from_pretrained(path)(ids).logits
    return request.param, path, ids, logits


def _logits(model, ids):
    with torch.no_grad():
        return model(ids).logits


def _quantized_names(model):
    return sorted(name for name, m in model.named_modules() if is_bnb_module(m))


@pytest.mark.parametrize("kind", list(KINDS))
def test_quantized_load_matches_transformers_and_round_trips(family, kind, hf_load, tmp_path):
    name, path, ids, float_logits = family
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=BitsAndBytesConfig(**KINDS[kind]))
    oracle = hf_load(path, quantization_config=HFBitsAndBytesConfig(**KINDS[kind]))
    assert model.is_quantized and model.quantization_method == "bitsandbytes"
    assert type(model.lm_head) is nn.Linear  # the output head stays in full precision
    assert _quantized_names(model) == _quantized_names(oracle)
    assert len(_quantized_names(model)) == (14 if name == "llama" else 8)

    logits = _logits(model, ids)
    torch.testing.assert_close(logits, _logits(oracle, ids), rtol=0, atol=HF_ATOL)
    error = ((logits - float_logits).norm() / float_logits.norm()).item()
    assert error < FLOAT_TOL[kind], error

    # xf save -> xf reload: the bnb state keys load as they are; identical logits.
    model.save_pretrained(tmp_path / "xf")
    written = json.loads((tmp_path / "xf" / "config.json").read_text())["quantization_config"]
    # transformers' JSON, plus the full list of layers kept in float (so both libraries rebuild the same ones).
    skipped = written["llm_int8_skip_modules"]
    assert {"lm_head", "model.embed_tokens" if name == "llama" else "transformer.wte"} <= set(skipped)
    assert written == {**HFBitsAndBytesConfig(**KINDS[kind]).to_dict(), "llm_int8_skip_modules": skipped}
    with safe_open(tmp_path / "xf" / "model.safetensors", "pt") as f:
        stored = f.get_tensor(_quantized_names(model)[0] + ".weight")
    assert stored.dtype == (torch.int8 if kind == "int8" else torch.uint8)
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "xf")
    assert again.is_quantized and _quantized_names(again) == _quantized_names(model)
    torch.testing.assert_close(_logits(again, ids), logits, rtol=0, atol=0)
    # ... and transformers reads what xf wrote, and xf reads what transformers wrote.
    torch.testing.assert_close(_logits(hf_load(tmp_path / "xf"), ids), logits, rtol=0, atol=HF_ATOL)
    oracle.save_pretrained(tmp_path / "hf")
    from_hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf")
    torch.testing.assert_close(_logits(from_hf, ids), logits, rtol=0, atol=HF_ATOL)


def test_generate_matches_transformers(family, hf_load):
    _, path, ids, _ = family
    config = KINDS["nf4"]
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=BitsAndBytesConfig(**config))
    oracle = hf_load(path, quantization_config=HFBitsAndBytesConfig(**config))
    prompt = ids[:1, :5]
    out = model.generate(prompt, max_new_tokens=6, do_sample=False)
    assert out.shape == (1, 11)
    assert out.tolist() == oracle.generate(prompt, max_new_tokens=6, do_sample=False).tolist()


def test_skip_list_is_added_to_the_default_head(float_checkpoint, hf_load):
    path = float_checkpoint("llama")
    model = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=["mlp"])
    )
    layer = model.model.layers[0]
    assert type(layer.mlp.down_proj) is nn.Linear and type(model.lm_head) is nn.Linear
    assert is_bnb_module(layer.self_attn.q_proj)
    # transformers replaces its default with the list and matches suffixes: spell out the same set there.
    skip = ["lm_head", "gate_proj", "up_proj", "down_proj"]
    oracle = hf_load(
        path, quantization_config=HFBitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=skip)
    )
    ids = torch.arange(10).view(1, 10)
    torch.testing.assert_close(_logits(model, ids), _logits(oracle, ids), rtol=0, atol=HF_ATOL)


def test_four_bit_footprint_is_under_a_fifth_of_fp32(tmp_path):
    import transformers

    config = transformers.LlamaConfig(
        hidden_size=128, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4, vocab_size=16
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path)
    full = AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32)
    nf4 = AutoModelForCausalLM.from_pretrained(
        tmp_path, quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
    )
    int8 = AutoModelForCausalLM.from_pretrained(
        tmp_path, quantization_config=BitsAndBytesConfig(load_in_8bit=True)
    )
    fp32_bytes = sum(p.numel() * 4 for p in full.parameters())
    assert nf4.get_memory_footprint() <= 0.2 * fp32_bytes
    assert int8.get_memory_footprint() <= 0.3 * fp32_bytes


def test_dequantize_gives_a_float_model_that_saves_and_loads(float_checkpoint, tmp_path):
    path = float_checkpoint("llama")
    model = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=BitsAndBytesConfig(load_in_4bit=True)
    )
    ids = torch.arange(10).view(1, 10)
    quantized = _logits(model, ids)
    assert model.dequantize() is model
    assert _quantized_names(model) == [] and not model.is_quantized
    assert model.config.quantization_config is None
    assert model.model.layers[0].mlp.up_proj.weight.dtype == torch.float32
    torch.testing.assert_close(_logits(model, ids), quantized, rtol=1e-5, atol=1e-5)
    model.save_pretrained(tmp_path)
    assert "quantization_config" not in json.loads((tmp_path / "config.json").read_text())
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert not getattr(reloaded, "is_quantized", False)
    torch.testing.assert_close(_logits(reloaded, ids), quantized, rtol=1e-5, atol=1e-5)
