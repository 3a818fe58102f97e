import json

import pytest
import torch

from xf_core.errors import XfConfigError
from xf_load.generation import GenerationConfig


def test_unset_fields_are_none_and_defaults_fill_in_on_merge():
    config = GenerationConfig(max_new_tokens=5)
    assert config.num_beams is None and config.top_k is None
    merged = config.merged()
    assert merged.num_beams == 1 and merged.top_k == 50 and merged.do_sample is False
    assert merged.max_new_tokens == 5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"num_beams": 0}, "num_beams"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"typical_p": 0.0}, "typical_p"),
        ({"min_p": 1.5}, "min_p"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"do_sample": True, "temperature": 0.0}, "temperature"),
        ({"num_beams": 2, "num_return_sequences": 3}, "num_return_sequences"),
        ({"num_return_sequences": 2}, "num_return_sequences"),
        ({"early_stopping": "sometimes"}, "early_stopping"),
        ({"cache_implementation": "paged"}, "cache_implementation"),
        ({"bad_words_ids": [[]]}, "bad_words_ids"),
        ({"eos_token_id": [-1]}, "eos_token_id"),
    ],
)
def test_invalid_values_raise_valueerror_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field) as info:
        GenerationConfig(**kwargs)
    assert isinstance(info.value, XfConfigError) and info.value.key == field


def test_round_trip_keeps_unknown_keys_and_reads_transformers_files(tmp_path):
    transformers = pytest.importorskip("transformers")
    hf = transformers.GenerationConfig(
        max_new_tokens=7, do_sample=True, top_p=0.8, eos_token_id=[2, 3], pad_token_id=0, penalty_alpha=0.6
    )
    hf.save_pretrained(tmp_path)
    ours = GenerationConfig.from_pretrained(tmp_path)
    assert ours.max_new_tokens == 7 and ours.top_p == 0.8 and ours.eos_token_id == [2, 3]
    assert ours.extra["penalty_alpha"] == 0.6  # unknown to xf, kept
    out = tmp_path / "ours"
    ours.save_pretrained(out)
    written = json.loads((out / "generation_config.json").read_text())
    assert written["penalty_alpha"] == 0.6 and written["do_sample"] is True
    assert "num_beams" not in written  # unset fields are not written
    back = transformers.GenerationConfig.from_pretrained(out)
    assert back.max_new_tokens == 7 and back.top_p == 0.8 and back.eos_token_id == [2, 3]


def test_from_pretrained_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="generation_config.json"):
        GenerationConfig.from_pretrained(tmp_path)
    (tmp_path / "generation_config.json").write_text('{"top_p": 3.0}')
    with pytest.raises(ValueError, match="generation_config.json") as info:
        GenerationConfig.from_pretrained(tmp_path)
    assert info.value.key == "top_p"
    (tmp_path / "generation_config.json").write_text("{oops")
    with pytest.raises(ValueError, match="not valid JSON"):
        GenerationConfig.from_pretrained(tmp_path)


def test_from_model_config_takes_special_tokens_and_legacy_fields(toy):
    model = toy(eos_token_id=3, pad_token_id=0, bos_token_id=1)
    model.config.max_length = 12  # a legacy generation field in config.json
    config = GenerationConfig.from_model_config(model.config)
    assert (config.eos_token_id, config.pad_token_id, config.bos_token_id, config.max_length) == (3, 0, 1, 12)
    assert GenerationConfig.from_model_config({"eos_token_id": [5, 6], "hidden_size": 8}).eos_token_id == [
        5,
        6,
    ]


def test_precedence_kwargs_over_passed_config_over_model_config_over_defaults(toy):
    model = toy()
    ids = torch.randint(0, 97, (1, 4))
    model.generation_config = GenerationConfig(max_new_tokens=3, num_beams=1)
    assert model.generate(ids).shape[1] == 4 + 3  # the model's config
    passed = GenerationConfig(max_new_tokens=5)
    assert model.generate(ids, generation_config=passed).shape[1] == 4 + 5  # passed beats model's
    assert model.generate(ids, generation_config=passed, max_new_tokens=2).shape[1] == 4 + 2  # kwargs win
    model.generation_config = None
    assert model.generate(ids).shape[1] == 4 + 20  # global default: 20 new tokens
    assert passed.max_new_tokens == 5  # generate never mutates the caller's config


def test_generate_rejects_bad_settings_at_once(toy):
    model = toy()
    ids = torch.randint(0, 97, (1, 4))
    with pytest.raises(ValueError, match="top_p"):
        model.generate(ids, top_p=1.5)
    with pytest.raises(ValueError, match="num_beams"):
        model.generate(ids, num_beams=0)
    with pytest.raises(TypeError, match="max_new_token"):
        model.generate(ids, max_new_token=3)  # typo: not a field, not a forward input
    with pytest.raises(ValueError, match="max_length"):
        model.generate(ids, max_length=4)
