"""Bad files and options give one typed error naming the culprit: config values of the wrong type, an integer
tensor for a float weight, unreadable weight and config files, devices this machine does not have, saving
where a file is in the way."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import xf_load
from xf_core.errors import XfConfigError, XfOSError
from xf_load import LlamaConfig, LlamaForCausalLM
from xf_load.errors import CheckpointError, DeviceError, DtypeMismatchError


def _edit_config(path, **changes):
    data = json.loads((path / "config.json").read_text())
    data.update(changes)
    (path / "config.json").write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("hidden_size", "abc", "must be an integer"),
        ("rms_norm_eps", "small", "must be a number"),
        ("tie_word_embeddings", "yes", "must be true or false"),
        ("hidden_act", 3, "must be a string"),
        ("num_hidden_layers", 2.5, "must be an integer"),
        ("eos_token_id", {"a": 1}, "must be an integer or a list or null"),
    ],
)
def test_config_value_of_the_wrong_type_names_key_value_and_file(save_hf, key, value, words):
    path = save_hf("LlamaForCausalLM")
    _edit_config(path, **{key: value})
    with pytest.raises(XfConfigError, match=words) as info:
        LlamaForCausalLM.from_pretrained(path)
    message = str(info.value)
    assert f"{key}={value!r}" in message and str(path / "config.json") in message
    assert info.value.key == key and info.value.file == str(path / "config.json")


def test_config_types_that_fit_still_load():
    config = LlamaConfig.from_dict({"rms_norm_eps": 1, "eos_token_id": [1, 2], "head_dim": None})
    assert config.rms_norm_eps == 1 and config.eos_token_id == [1, 2]
    with pytest.raises(XfConfigError, match=r"vocab_size='7' must be an integer"):
        LlamaConfig(vocab_size="7")


def test_integer_tensor_for_a_float_weight_names_key_and_both_dtypes(save_hf):
    path = save_hf("LlamaForCausalLM")
    state = load_file(path / "model.safetensors")
    key = "model.layers.0.mlp.up_proj.weight"
    state[key] = state[key].to(torch.int64)
    save_file(state, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(
        DtypeMismatchError, match=r"is stored as int64 .* floating-point parameter \(float32\)"
    ) as e:
        LlamaForCausalLM.from_pretrained(path)
    assert key in str(e.value) and e.value.key == key and e.value.found == torch.int64


def test_weights_name_that_is_a_directory(save_hf):
    path = save_hf("LlamaForCausalLM")
    (path / "model.safetensors").unlink()
    (path / "model.safetensors").mkdir()
    with pytest.raises(CheckpointError, match="is a directory") as e:
        LlamaForCausalLM.from_pretrained(path)
    assert str(path / "model.safetensors") in str(e.value) and isinstance(e.value, OSError)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_weights_file_without_read_permission(save_hf):
    path = save_hf("LlamaForCausalLM")
    (path / "model.safetensors").chmod(0)
    with pytest.raises(CheckpointError, match="Permission denied") as e:
        LlamaForCausalLM.from_pretrained(path)
    assert str(path / "model.safetensors") in str(e.value)


def test_os_error_while_reading_a_tensor_names_the_file(save_hf, monkeypatch):
    from xf_load import _checkpoint

    path = save_hf("LlamaForCausalLM")

    def failing(self, view, nbytes, key):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_checkpoint.SafetensorsFile, "_read_into", failing)
    with pytest.raises(CheckpointError, match="Input/output error") as e:
        LlamaForCausalLM.from_pretrained(path, disable_mmap=True)  # a mapped load reads nothing here
    assert str(path / "model.safetensors") in str(e.value) and "reading tensor" in str(e.value)


def test_config_json_that_is_a_directory(save_hf):
    path = save_hf("LlamaForCausalLM")
    (path / "config.json").unlink()
    (path / "config.json").mkdir()
    with pytest.raises(XfOSError, match="is a directory") as e:
        LlamaForCausalLM.from_pretrained(path)
    assert str(path / "config.json") in str(e.value)


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ("nosuch", "is not a device torch knows"),
        ("mps", "MPS"),
        (-3, "not a device index"),
        (True, "not a device"),
    ],
)
def test_check_device_names_the_value_and_what_is_available(device, words, monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=words) as e:
        xf_load.check_device(device)
    assert repr(device) in str(e.value) and (device is True or "available here: cpu" in str(e.value))
    assert isinstance(e.value, ValueError)


def test_check_device_without_cuda_and_with_too_few_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"device='cuda' asks for CUDA, but torch sees no CUDA device"):
        xf_load.check_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match=r"device='cuda:3' asks for CUDA device 3, but torch sees 1") as e:
        xf_load.check_device("cuda:3")
    assert "available here: cpu, cuda:0" in str(e.value)
    assert xf_load.check_device(0) == "cuda:0" and xf_load.check_device("cuda:0") == "cuda:0"
    assert xf_load.check_device(-1) == "cpu" and xf_load.check_device(torch.device("cpu")) == "cpu"


def test_a_bad_device_map_fails_before_any_file_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    missing = tmp_path / "nothing-here"  # never looked at: the device is checked first
    with pytest.raises(DeviceError, match=r"device_map='nosuch'.*may also be one of auto"):
        LlamaForCausalLM.from_pretrained(missing, device_map="nosuch")
    with pytest.raises(DeviceError, match=r"device_map='cuda:1'"):
        LlamaForCausalLM.from_pretrained(missing, device_map={"model": "cpu", "lm_head": "cuda:1"})
    with pytest.raises(DeviceError, match=r"device_map='cuda'"):
        xf_load.LoadOptions(device_map="cuda")


def _tiny() -> LlamaForCausalLM:
    return LlamaForCausalLM(
        LlamaConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=32
        )
    )


def test_saving_onto_or_under_a_file_names_the_path(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    with pytest.raises(XfOSError, match="is a file") as e:
        _tiny().save_pretrained(blocker)
    assert str(blocker) in str(e.value)
    with pytest.raises(XfOSError, match="is a file, so .* cannot be created") as e:
        _tiny().save_pretrained(blocker / "deeper" / "model")
    assert str(blocker) in str(e.value) and blocker.read_text() == "x"


def test_saving_through_a_symlink_replaces_what_it_points_at(tmp_path):
    real = tmp_path / "real"
    _tiny().save_pretrained(real)
    (tmp_path / "link").symlink_to(real)
    _tiny().save_pretrained(tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and (real / "model.safetensors").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]


def test_saving_into_the_working_directory_leaves_the_process_there(tmp_path, monkeypatch):
    target = tmp_path / "here"
    _tiny().save_pretrained(target)
    (target / "sub").mkdir()
    monkeypatch.chdir(target / "sub")
    _tiny().save_pretrained("..")
    assert Path.cwd() == target / "sub" and Path("../model.safetensors").is_file()
