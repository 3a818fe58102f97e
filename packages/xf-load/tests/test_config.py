"""Configs: AutoConfig dispatch, the config.json round trip against transformers, legacy forms, validation."""

from __future__ import annotations

import json

import pytest
import torch

import xf_load
from xf_core.errors import XfConfigError, XfFileNotFoundError
from xf_load.errors import UnknownModelTypeError
from xf_load.models.llama import LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config


@pytest.mark.parametrize(
    ("config_class", "ours"),
    [
        ("LlamaConfig", LlamaConfig),
        ("MistralConfig", MistralConfig),
        ("Qwen2Config", Qwen2Config),
        ("Qwen3Config", Qwen3Config),
    ],
)
def test_save_pretrained_writes_what_transformers_writes(config_class, ours, tmp_path):
    import transformers

    values = {
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 2,
        "vocab_size": 128,
        "id2label": {0: "neg", 1: "neu", 2: "pos"},
        "label2id": {"neg": 0, "neu": 1, "pos": 2},
        "architectures": ["X"],
        "dtype": "bfloat16",
        "tie_word_embeddings": True,
    }
    theirs = getattr(transformers, config_class)(**values)
    theirs.save_pretrained(tmp_path / "hf")
    hf_json = json.loads((tmp_path / "hf" / "config.json").read_text())

    config = xf_load.AutoConfig.from_pretrained(tmp_path / "hf")
    assert type(config) is ours
    assert config.id2label == {0: "neg", 1: "neu", 2: "pos"} and config.num_labels == 3
    assert config.label2id == {"neg": 0, "neu": 1, "pos": 2}
    config.save_pretrained(tmp_path / "xf")
    xf_json = json.loads((tmp_path / "xf" / "config.json").read_text())
    assert xf_json == hf_json  # transformers_version is kept as an unknown key

    del xf_json["transformers_version"]
    fresh = ours.from_dict(
        {k: v for k, v in values.items()} | {"id2label": {"0": "neg", "1": "neu", "2": "pos"}}
    )
    written = fresh.to_dict()
    assert written == {k: v for k, v in hf_json.items() if k != "transformers_version"}
    back = getattr(transformers, config_class).from_pretrained(tmp_path / "xf")
    assert back.to_diff_dict() == theirs.to_diff_dict()


def test_unknown_keys_survive_and_overrides_win(tmp_path):
    LlamaConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=2).save_pretrained(tmp_path)
    data = json.loads((tmp_path / "config.json").read_text())
    data["my_custom_flag"] = {"nested": [1, 2]}
    (tmp_path / "config.json").write_text(json.dumps(data))
    config = xf_load.AutoConfig.from_pretrained(tmp_path, num_hidden_layers=3, dtype=torch.float16)
    assert config.num_hidden_layers == 3 and config.dtype == "float16"
    assert config.my_custom_flag == {"nested": [1, 2]}
    config.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["my_custom_flag"] == {
        "nested": [1, 2]
    }


def test_legacy_rope_scaling_and_torch_dtype_are_read():
    config = LlamaConfig.from_dict(
        {
            "hidden_size": 64,
            "num_attention_heads": 4,
            "rope_scaling": {"type": "linear", "factor": 2.0},
            "rope_theta": 500000.0,
            "torch_dtype": "float16",
        }
    )
    assert config.rope_parameters["rope_type"] == "linear"
    assert config.rope_parameters["rope_theta"] == 500000.0
    assert config.dtype == "float16"
    assert "rope_scaling" not in config.to_dict() and "torch_dtype" not in config.to_dict()


def test_missing_config_json_says_so(tmp_path):
    with pytest.raises(XfFileNotFoundError, match="has no config.json"):
        xf_load.AutoConfig.from_pretrained(tmp_path)


def test_unknown_model_type_lists_supported(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mamba9"}))
    with pytest.raises(UnknownModelTypeError, match=r"'mamba9'.*llama, mistral") as e:
        xf_load.AutoConfig.from_pretrained(tmp_path)
    assert isinstance(e.value, ValueError) and e.value.file == str(tmp_path / "config.json")


def test_invalid_values_name_the_field(tmp_path):
    with pytest.raises(XfConfigError, match="num_key_value_heads=3") as e:
        LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=3)
    assert e.value.key == "num_key_value_heads"
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "llama", "hidden_size": 30, "num_attention_heads": 4})
    )
    with pytest.raises(ValueError, match=r"config.json: hidden_size=30 is not divisible"):
        xf_load.AutoConfig.from_pretrained(tmp_path)
    with pytest.raises(XfConfigError, match="dtype='float33' is not a dtype"):
        LlamaConfig(dtype="float33")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(XfConfigError, match="not valid JSON"):
        xf_load.AutoConfig.from_pretrained(tmp_path)


def test_num_labels_override_builds_labels():
    config = LlamaConfig.from_dict({"hidden_size": 64, "num_attention_heads": 4}, num_labels=5)
    assert config.num_labels == 5 and config.id2label[4] == "LABEL_4"
