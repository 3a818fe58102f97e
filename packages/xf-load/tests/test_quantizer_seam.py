"""The quantization seam: a quantizer registered for a quant_method gets every hook from from_pretrained."""

from __future__ import annotations

import json
from typing import ClassVar

import pytest
import torch
from torch import nn

from xf_load import quantizers
from xf_load.errors import QuantizationError
from xf_load.models.llama import LlamaForCausalLM


class FakeInt8(quantizers.Quantizer):
    """Rounds Linear weights of the decoder layers to int8 with one scale per row (kept as a buffer)."""

    quant_method = "fake-int8"
    calls: ClassVar[list[str]] = []

    def validate_environment(self, *, device_map, dtype):
        self.calls.append(f"validate:{dtype}")

    def preprocess_model(self, model):
        self.calls.append(f"preprocess:{next(model.parameters()).device.type}")

    def param_needs_quantization(self, model, name):
        return ".layers." in name and name.endswith("proj.weight")

    def create_quantized_param(self, model, tensor, name, device):
        mod_name, _, attr = name.rpartition(".")
        module = model.get_submodule(mod_name)
        scale = tensor.abs().amax(dim=1, keepdim=True) / 127
        q = torch.round(tensor / scale).to(torch.int8)
        module._parameters[attr] = nn.Parameter(q, requires_grad=False)
        module.register_buffer("weight_scale", scale.to(device))
        self.calls.append("quantize")

    def postprocess_model(self, model):
        for module in model.modules():  # dequantize on the fly: a forward hook-free, testable stand-in
            if hasattr(module, "weight_scale"):
                module.weight = nn.Parameter(module.weight.float() * module.weight_scale, requires_grad=False)
        self.calls.append("postprocess")


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(quantizers.QUANTIZERS, "fake-int8", FakeInt8)
    FakeInt8.calls = []
    return FakeInt8


def test_quantization_config_argument_runs_every_hook(registered, save_hf, batch, tmp_path):
    path = save_hf("LlamaForCausalLM")
    reference = LlamaForCausalLM.from_pretrained(path)
    model = LlamaForCausalLM.from_pretrained(
        path, quantization_config={"quant_method": "fake-int8", "bits": 8}
    )
    calls = registered.calls
    assert (
        calls[0] == "validate:torch.float32" and calls[1] == "preprocess:meta" and calls[-1] == "postprocess"
    )
    assert calls.count("quantize") == 2 * 7  # seven projections in each of two layers
    assert model.config.quantization_config == {"quant_method": "fake-int8", "bits": 8}
    assert isinstance(model.hf_quantizer, FakeInt8) and model.is_quantized
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference(**batch).logits, atol=0.05, rtol=0)
    with pytest.raises(ValueError, match="cannot be saved"):
        model.save_pretrained(tmp_path / "out")


def test_config_json_quantization_config_dispatches(registered, save_hf):
    path = save_hf("LlamaForCausalLM")
    data = json.loads((path / "config.json").read_text())
    data["quantization_config"] = {"quant_method": "fake-int8"}
    (path / "config.json").write_text(json.dumps(data))
    LlamaForCausalLM.from_pretrained(path)
    assert "quantize" in registered.calls


def test_unknown_method_names_xf_quant(save_hf):
    path = save_hf("LlamaForCausalLM")
    with pytest.raises(QuantizationError, match=r"'no-such-method'.*pip install xf-quant"):
        LlamaForCausalLM.from_pretrained(path, quantization_config={"quant_method": "no-such-method"})
    with pytest.raises(QuantizationError, match="'quant_method' string"):
        LlamaForCausalLM.from_pretrained(path, quantization_config={"bits": 4})
