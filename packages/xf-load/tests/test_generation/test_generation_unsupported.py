"""transformers' generation keys xf does not implement: refused at generate time when set to anything but their
transformers default, wherever they come from; at their default they load and generate as before."""

from __future__ import annotations

import json

import pytest
import torch

from xf_core.errors import XfConfigError
from xf_load.generation import GenerationConfig
from xf_load.generation._unsupported import UNSUPPORTED_KEYS


@pytest.fixture
def model(toy):
    return toy(seed=0)


IDS = torch.tensor([[3, 4, 5]])


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("penalty_alpha", 0.6),
        ("epsilon_cutoff", 3e-4),
        ("guidance_scale", 1.5),
        ("force_words_ids", [[5, 6]]),
        ("output_attentions", True),
        ("dola_layers", "high"),
    ],
)
def test_call_keyword_is_refused(model, key, value):
    with pytest.raises(XfConfigError, match=key) as info:
        model.generate(IDS, max_new_tokens=2, **{key: value})
    assert info.value.key == key


def test_key_from_generation_config_json_is_refused_at_generate_only(model, tmp_path):
    (tmp_path / "generation_config.json").write_text(json.dumps({"eta_cutoff": 0.001, "max_new_tokens": 2}))
    config = GenerationConfig.from_pretrained(tmp_path)  # loading is fine
    assert config.extra == {"eta_cutoff": 0.001}
    with pytest.raises(XfConfigError, match="eta_cutoff=0.001"):
        model.generate(IDS, generation_config=config)
    model.generation_config = config
    with pytest.raises(XfConfigError, match="ToyCausalLM.generation_config"):
        model.generate(IDS)


def test_keys_at_their_defaults_generate_as_before(model, tmp_path):
    # What transformers writes for a model's defaults, and more: every unsupported key at its default.
    defaults = {key: off[-1] for key, (off, _) in UNSUPPORTED_KEYS.items()}
    (tmp_path / "generation_config.json").write_text(json.dumps({**defaults, "low_memory": True}))
    model.generation_config = GenerationConfig.from_pretrained(tmp_path)
    expected = model.generate(IDS, max_new_tokens=4, generation_config=GenerationConfig())
    assert (
        model.generate(IDS, max_new_tokens=4, penalty_alpha=0.0, guidance_scale=1.0).tolist()
        == expected.tolist()
    )
