"""BitsAndBytesConfig: validation naming the field, and the same JSON as transformers both ways."""

import json

import pytest
import torch
from transformers import BitsAndBytesConfig as HFBitsAndBytesConfig

from xf_quant import BitsAndBytesConfig
from xf_quant.errors import QuantizationConfigError


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"load_in_4bit": True, "load_in_8bit": True}, "load_in_4bit"),
        ({}, "load_in_4bit"),
        ({"load_in_4bit": True, "bnb_4bit_quant_type": "int4"}, "bnb_4bit_quant_type"),
        ({"load_in_4bit": True, "bnb_4bit_compute_dtype": 16}, "bnb_4bit_compute_dtype"),
        ({"load_in_4bit": True, "bnb_4bit_compute_dtype": "float8"}, "bnb_4bit_compute_dtype"),
        ({"load_in_4bit": True, "bnb_4bit_quant_storage": torch.complex64}, "bnb_4bit_quant_storage"),
        ({"load_in_8bit": "yes"}, "load_in_8bit"),
        ({"load_in_8bit": True, "llm_int8_threshold": "6"}, "llm_int8_threshold"),
        ({"load_in_8bit": True, "llm_int8_skip_modules": "lm_head"}, "llm_int8_skip_modules"),
    ],
)
def test_invalid_values_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field) as info:
        BitsAndBytesConfig(**kwargs)
    assert isinstance(info.value, QuantizationConfigError)
    assert info.value.key == field


def test_a_typo_in_a_field_name_is_a_type_error():
    with pytest.raises(TypeError, match="load_in_4bits"):
        BitsAndBytesConfig(load_in_4bits=True)


def test_dtypes_are_normalised_and_method_named():
    config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype="bfloat16"
    )
    assert config.bnb_4bit_compute_dtype is torch.bfloat16
    assert config.bnb_4bit_quant_storage is torch.uint8
    assert config.quantization_method() == "nf4"
    assert BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=4).llm_int8_threshold == 4.0
    assert BitsAndBytesConfig(load_in_8bit=True).quantization_method() == "llm_int8"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_use_double_quant": True},
        {"load_in_4bit": True, "bnb_4bit_compute_dtype": torch.float16, "bnb_4bit_quant_storage": "bfloat16"},
        {"load_in_8bit": True, "llm_int8_skip_modules": ["mlp"], "llm_int8_threshold": 3.5},
    ],
)
def test_json_matches_transformers_both_ways(kwargs):
    ours = BitsAndBytesConfig(**kwargs)
    theirs = HFBitsAndBytesConfig(**kwargs)
    assert ours.to_dict() == theirs.to_dict()
    # What transformers writes into config.json reads back equal, and the reverse.
    assert BitsAndBytesConfig.from_dict(json.loads(json.dumps(theirs.to_dict()))) == ours
    back = HFBitsAndBytesConfig.from_dict(json.loads(ours.to_json_string()))
    assert back.to_dict() == theirs.to_dict()


def test_from_dict_keeps_unknown_keys_and_checks_the_method():
    data = {**BitsAndBytesConfig(load_in_8bit=True).to_dict(), "future_option": 3}
    config = BitsAndBytesConfig.from_dict(data)
    assert config.extra == {"future_option": 3}
    assert config.to_dict() == data
    with pytest.raises(QuantizationConfigError, match="quant_method='gptq'"):
        BitsAndBytesConfig.from_dict({"quant_method": "gptq", "load_in_4bit": True})
    with pytest.raises(QuantizationConfigError, match="_load_in_4bit"):
        BitsAndBytesConfig.from_dict({"load_in_4bit": True, "_load_in_4bit": False})
