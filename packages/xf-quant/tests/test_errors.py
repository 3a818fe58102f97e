"""Errors raised up front by from_pretrained with a quantization_config: each names what is wrong and the fix."""

import sys

import pytest
from safetensors.torch import load_file, save_file

from xf_core.errors import MissingDependencyError, XfDependencyVersionError
from xf_load.auto import AutoModelForCausalLM
from xf_quant import BitsAndBytesConfig, _bnb
from xf_quant.errors import (
    BitsAndBytesVersionError,
    DeviceMapError,
    PrequantizedWeightsError,
    QuantizationConfigError,
)

NF4 = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")


@pytest.fixture
def llama(float_checkpoint):
    return float_checkpoint("llama")


def test_bitsandbytes_not_installed(llama, monkeypatch):
    monkeypatch.setattr(_bnb.deps, "installed_version", lambda name: None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'bitsandbytes>=0\.45\.0'"):
        AutoModelForCausalLM.from_pretrained(llama, quantization_config=NF4)


def test_bitsandbytes_too_old(llama, monkeypatch):
    monkeypatch.setattr(_bnb.deps, "installed_version", lambda name: "0.41.1")
    with pytest.raises(BitsAndBytesVersionError, match=r"bitsandbytes>=0\.45\.0.*0\.41\.1") as info:
        AutoModelForCausalLM.from_pretrained(llama, quantization_config=NF4)
    assert isinstance(info.value, MissingDependencyError) and isinstance(info.value, XfDependencyVersionError)
    assert info.value.installed == "0.41.1" and "pip install -U" in info.value.install


def test_bitsandbytes_module_hidden(llama, monkeypatch):
    # Metadata says installed, but the module cannot be imported (a broken or shadowed install).
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    _bnb._import.cache_clear()
    try:
        with pytest.raises(MissingDependencyError, match="bitsandbytes>=0.45.0"):
            AutoModelForCausalLM.from_pretrained(llama, quantization_config=NF4)
    finally:
        _bnb._import.cache_clear()


def test_device_map_with_quantized_modules_on_disk(llama):
    device_map = {"model.embed_tokens": "cpu", "model.layers": "disk", "model.norm": "cpu", "lm_head": "cpu"}
    with pytest.raises(
        DeviceMapError, match=r"model\.layers to 'disk'.*llm_int8_enable_fp32_cpu_offload"
    ) as info:
        AutoModelForCausalLM.from_pretrained(llama, quantization_config=NF4, device_map=device_map)
    assert info.value.modules == ["model.layers"]


def test_invalid_quantization_config_dict_names_the_field(llama):
    bad = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "int4"}
    with pytest.raises(QuantizationConfigError, match="bnb_4bit_quant_type") as info:
        AutoModelForCausalLM.from_pretrained(llama, quantization_config=bad)
    assert info.value.key == "bnb_4bit_quant_type"


def test_prequantized_checkpoint_missing_a_state_tensor(llama, tmp_path):
    AutoModelForCausalLM.from_pretrained(llama, quantization_config=NF4).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(weights)
    del state["model.layers.1.mlp.up_proj.weight.absmax"]
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(
        PrequantizedWeightsError, match=r"model\.layers\.1\.mlp\.up_proj\.weight\.absmax"
    ) as info:
        AutoModelForCausalLM.from_pretrained(tmp_path)
    assert info.value.key == "model.layers.1.mlp.up_proj.weight.absmax"


def test_fp32_cpu_offload_keeps_disk_modules_unquantized(llama, tmp_path):
    import torch
    from torch import nn

    from xf_quant import is_bnb_module

    device_map = {
        "model.embed_tokens": "cpu",
        "model.rotary_emb": "cpu",
        "model.layers.0": "cpu",
        "model.layers.1": "disk",
        "model.norm": "cpu",
        "lm_head": "cpu",
    }
    config = BitsAndBytesConfig(load_in_4bit=True, llm_int8_enable_fp32_cpu_offload=True)
    model = AutoModelForCausalLM.from_pretrained(
        llama, quantization_config=config, device_map=device_map, offload_folder=tmp_path
    )
    assert is_bnb_module(model.model.layers[0].mlp.up_proj)
    assert type(model.model.layers[1].mlp.up_proj) is nn.Linear
    ids = torch.arange(12).view(1, 12)
    with torch.no_grad():
        want, got = AutoModelForCausalLM.from_pretrained(llama)(ids).logits, model(ids).logits
    assert ((got - want).norm() / want.norm()).item() < 0.25
