"""Broken checkpoints and bad arguments raise xf errors that name the file or key, never a raw KeyError."""

from __future__ import annotations

import json

import pytest
import torch

from xf_core.errors import XfConfigError, XfError
from xf_load.errors import CheckpointError, CheckpointNotFoundError
from xf_load.models.llama import LlamaForCausalLM


@pytest.fixture
def sharded(save_hf):
    return save_hf("LlamaForCausalLM", save_kwargs={"max_shard_size": "40KB"})


def test_corrupt_safetensors_names_the_file(save_hf):
    path = save_hf("LlamaForCausalLM")
    (path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match=r"model.safetensors is not a valid safetensors file") as e:
        LlamaForCausalLM.from_pretrained(path)
    assert isinstance(e.value, OSError) and e.value.file == str(path / "model.safetensors")


def test_truncated_safetensors_names_the_file_and_key(save_hf):
    path = save_hf("LlamaForCausalLM")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(
        CheckpointError, match=r"tensor '.*' ends at byte \d+ but the file has \d+ bytes"
    ) as e:
        LlamaForCausalLM.from_pretrained(path)
    assert e.value.key is not None and "truncated" in str(e.value)
    (path / "model.safetensors").write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="5 bytes long"):
        LlamaForCausalLM.from_pretrained(path)


def test_index_listing_a_missing_shard(sharded):
    victim = sorted(sharded.glob("model-*.safetensors"))[1]
    victim.unlink()
    with pytest.raises(
        CheckpointNotFoundError, match=rf"lists shard {victim.name} .*missing from .*re-download"
    ):
        LlamaForCausalLM.from_pretrained(sharded)


def test_index_entry_outside_the_directory(sharded):
    index_path = sharded / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    key = next(iter(index["weight_map"]))
    index["weight_map"][key] = "../elsewhere/model-00001-of-00002.safetensors"
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="outside the checkpoint directory") as e:
        LlamaForCausalLM.from_pretrained(sharded)
    assert e.value.key == key and e.value.file == str(index_path)


def test_index_that_does_not_match_its_shards(sharded):
    index_path = sharded / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["model.extra.weight"] = next(iter(index["weight_map"].values()))
    index_path.write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="maps 'model.extra.weight' to .* which has no such tensor"):
        LlamaForCausalLM.from_pretrained(sharded)
    index_path.write_text(json.dumps({"metadata": {}}))
    with pytest.raises(CheckpointError, match="no 'weight_map'"):
        LlamaForCausalLM.from_pretrained(sharded)


def test_dtype_string_that_is_not_a_dtype(save_hf):
    path = save_hf("LlamaForCausalLM")
    with pytest.raises(XfConfigError, match="dtype='floot16' is not a dtype") as e:
        LlamaForCausalLM.from_pretrained(path, dtype="floot16")
    assert isinstance(e.value, ValueError)
    with pytest.raises(XfConfigError, match="device_map"):
        LlamaForCausalLM.from_pretrained(path, device_map="everywhere")
    if not torch.cuda.is_available():
        with pytest.raises(XfConfigError, match="no CUDA device"):
            LlamaForCausalLM.from_pretrained(path, device_map="cuda:0")


def test_no_weights_at_all(save_hf):
    path = save_hf("LlamaForCausalLM")
    (path / "model.safetensors").unlink()
    with pytest.raises(
        CheckpointNotFoundError, match="has no model.safetensors or model.safetensors.index.json"
    ) as e:
        LlamaForCausalLM.from_pretrained(path)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, XfError)
