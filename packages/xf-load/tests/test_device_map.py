"""device_map: a device, a dict, and accelerate's auto/balanced/sequential with CPU + disk offload."""

from __future__ import annotations

import pytest
import torch

from xf_load.models.llama import LlamaForCausalLM


@pytest.fixture
def path(save_hf):
    return save_hf("LlamaForCausalLM", num_hidden_layers=4)


@pytest.fixture
def reference(path, batch):
    with torch.no_grad():
        return LlamaForCausalLM.from_pretrained(path)(**batch).logits


def test_device_string_and_dict(path, batch, reference):
    model = LlamaForCausalLM.from_pretrained(path, device_map="cpu")
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert model.hf_device_map == {"": "cpu"}
    model = LlamaForCausalLM.from_pretrained(path, device_map={"": "cpu"})
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference)
    model = LlamaForCausalLM.from_pretrained(path, device_map={"model": "cpu", "lm_head": "cpu"})
    assert model.device.type == "cpu"


@pytest.mark.parametrize("strategy", ["auto", "sequential", "balanced"])
def test_auto_device_map_with_disk_offload(strategy, path, batch, reference, tmp_path):
    offload = tmp_path / "offload"
    model = LlamaForCausalLM.from_pretrained(
        path, device_map=strategy, max_memory={"cpu": 250_000}, offload_folder=offload
    )
    placed = set(model.hf_device_map.values())
    assert placed == {"cpu", "disk"}, model.hf_device_map
    assert (offload / "index.json").exists() and list(offload.glob("*.dat"))
    assert any(p.device.type == "meta" for p in model.parameters())  # offloaded weights live on disk
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference)


def test_dict_with_disk_entry(path, batch, reference, tmp_path):
    device_map = {
        "model.embed_tokens": "cpu",
        "model.layers": "disk",
        "model.norm": "cpu",
        "lm_head": "cpu",
    }
    model = LlamaForCausalLM.from_pretrained(path, device_map=device_map, offload_folder=tmp_path / "off")
    assert model.model.layers[0].mlp.up_proj.weight.device.type == "meta"
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits, reference)
