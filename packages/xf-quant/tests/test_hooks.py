"""BnbQuantizer only implements xf-load's quantizer hooks: nothing on the model instance is patched, the
quantizer sees the resolved device map and knows when the checkpoint is pre-quantized, and a missing
quantized weight is named instead of crashing the init."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from xf_load.auto import AutoModelForCausalLM
from xf_load.modeling_utils import PreTrainedModel
from xf_quant import BitsAndBytesConfig, BnbQuantizer, is_bnb_module
from xf_quant._convert import quant_state_bytes
from xf_quant.errors import DeviceMapError, PrequantizedWeightsError

NF4 = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")


@pytest.fixture
def llama(float_checkpoint):
    return float_checkpoint("llama")


def test_the_model_delegates_to_its_quantizer_without_instance_patches(llama, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(llama, quantization_config=NF4)
    assert isinstance(model.hf_quantizer, BnbQuantizer) and not model.hf_quantizer.pre_quantized
    assert model.is_quantized
    patched = {"get_memory_footprint", "dequantize", "_checkpoint_renames", "is_quantized", "quantizer"}
    assert not patched & set(vars(model))
    assert not any("reset_buffers" in vars(m) or "_xf_missing" in vars(m) for m in model.modules())
    assert type(model).get_memory_footprint is PreTrainedModel.get_memory_footprint
    plain = sum(p.nelement() * p.element_size() for p in model.parameters())
    plain += sum(b.nelement() * b.element_size() for b in model.buffers())
    state = sum(quant_state_bytes(m) for m in model.modules() if is_bnb_module(m))
    assert state > 0 and model.get_memory_footprint() == plain + state

    model.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert again.hf_quantizer.pre_quantized and again.is_quantized


def test_auto_device_map_is_resolved_before_the_quantizer_validates_it(llama, monkeypatch):
    seen = []
    original = BnbQuantizer.validate_environment

    def record(self, *, device_map, dtype):
        seen.append(device_map)
        return original(self, device_map=device_map, dtype=dtype)

    monkeypatch.setattr(BnbQuantizer, "validate_environment", record)
    model = AutoModelForCausalLM.from_pretrained(llama, quantization_config=NF4, device_map="auto")
    assert seen == [model.hf_device_map] and isinstance(seen[0], dict)
    assert set(seen[0].values()) <= {"cpu"}


def test_auto_device_map_that_offloads_to_disk_is_refused_by_the_quantizer(llama, tmp_path):
    # So little CPU memory that the automatic map sends the decoder layers to the disk, where bnb cannot run.
    with pytest.raises(DeviceMapError, match="'disk'") as info:
        AutoModelForCausalLM.from_pretrained(
            llama,
            quantization_config=NF4,
            device_map="sequential",
            max_memory={"cpu": 40_000},
            offload_folder=tmp_path,
        )
    assert info.value.modules


def test_prequantized_checkpoint_missing_a_quantized_weight_is_named(llama, tmp_path):
    AutoModelForCausalLM.from_pretrained(llama, quantization_config=NF4).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(weights)
    layer = "model.layers.0.self_attn.k_proj"
    for key in [k for k in state if k.startswith(layer + ".")]:
        del state[key]
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(PrequantizedWeightsError, match=rf"{layer}\.weight") as info:
        AutoModelForCausalLM.from_pretrained(tmp_path)
    assert info.value.key == f"{layer}.weight"


def test_float_checkpoint_missing_a_weight_to_quantize_is_named(llama, tmp_path):
    import shutil

    shutil.copytree(llama, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    state = load_file(weights)
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, weights, metadata={"format": "pt"})
    with pytest.raises(PrequantizedWeightsError, match=r"model\.layers\.1\.mlp\.up_proj\.weight.*complete"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "ckpt", quantization_config=NF4)


def test_dequantize_goes_through_the_quantizer(llama):
    model = AutoModelForCausalLM.from_pretrained(llama, quantization_config=NF4)
    ids = torch.arange(8).view(1, 8)
    with torch.no_grad():
        before = model(ids).logits
        model.dequantize(dtype=torch.float32)
        after = model(ids).logits
    assert model.hf_quantizer is None and not model.is_quantized
    assert not any(is_bnb_module(m) for m in model.modules())
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
