"""``xf_load.generation.generate(model, input_ids, config)`` on its own: a bare ``GenerationConfig`` is resolved
against the model (its generation_config, special tokens, max_length) exactly as ``model.generate`` does."""

from __future__ import annotations

import copy

import pytest
import torch

from xf_load.generation import GenerationConfig, generate
from xf_load.models.gpt2 import GPT2Config, GPT2LMHeadModel
from xf_load.models.llama import LlamaConfig, LlamaForCausalLM


def _llama() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    return LlamaForCausalLM(config).eval()


def _gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        n_embd=32, n_layer=2, n_head=4, vocab_size=64, n_positions=64, bos_token_id=1, eos_token_id=2
    )
    return GPT2LMHeadModel(config).eval()


FAMILIES = {"llama": _llama, "gpt2": _gpt2}


@pytest.fixture(params=list(FAMILIES), scope="module")
def model(request):
    model = FAMILIES[request.param]()
    with torch.no_grad():  # spread the logits: greedy and beam paths are not decided by float noise
        model.lm_head.weight.mul_(8.0) if request.param == "llama" else model.transformer.wte.weight.mul_(8.0)
    # What from_pretrained would have read from generation_config.json: the free function must use it too.
    model.generation_config = GenerationConfig(eos_token_id=[2, 5], pad_token_id=0, repetition_penalty=1.3)
    return model


def _prompt(rows: int = 2) -> torch.Tensor:
    return torch.randint(3, 64, (rows, 5), generator=torch.Generator().manual_seed(1))


SETTINGS = {
    "greedy": {"max_new_tokens": 8},
    "sampling": {"max_new_tokens": 8, "do_sample": True, "top_k": 10, "temperature": 0.8},
    "beam": {"max_new_tokens": 6, "num_beams": 3, "num_return_sequences": 2},
    "beam-sampling": {"max_new_tokens": 6, "num_beams": 2, "do_sample": True},
}


@pytest.mark.parametrize("setting", list(SETTINGS))
def test_free_function_with_a_bare_config_equals_model_generate(model, setting):
    kwargs = SETTINGS[setting]
    ids = _prompt()
    config = GenerationConfig(**kwargs)
    before = copy.deepcopy(config)
    with torch.no_grad():
        torch.manual_seed(7)
        ours = generate(model, ids, config)
        torch.manual_seed(7)
        method = model.generate(ids, **kwargs)
        torch.manual_seed(7)
        method_with_config = model.generate(ids, generation_config=config)
    assert ours.tolist() == method.tolist() == method_with_config.tolist()
    assert config == before  # the caller's config is not resolved in place


def test_free_function_takes_defaults_from_the_model(model):
    """Unset fields come from model.generation_config (eos, repetition penalty) and then the global defaults
    (max_length: 20 new tokens)."""
    ids = _prompt(1)
    with torch.no_grad():
        out = generate(model, ids, GenerationConfig())
        assert out.tolist() == model.generate(ids).tolist()
        assert out.shape[1] <= 5 + 20
        assert generate(model, ids, None).tolist() == out.tolist()
        # A field the caller sets wins over the model's.
        no_penalty = generate(model, ids, GenerationConfig(repetition_penalty=1.0))
        assert no_penalty.tolist() == model.generate(ids, repetition_penalty=1.0).tolist()


def test_free_function_reads_special_tokens_from_the_model_config_without_a_generation_config():
    model = _llama()
    assert model.generation_config is None
    ids = _prompt(1)
    with torch.no_grad():
        out = generate(model, ids, GenerationConfig(max_new_tokens=30, return_dict_in_generate=True))
        # No prompt: start from the config's bos_token_id.
        start = generate(model, None, GenerationConfig(max_new_tokens=3))
    assert out.sequences.tolist() == model.generate(ids, max_new_tokens=30).tolist()
    eos_rows = (out.sequences[:, 5:] == model.config.eos_token_id).any(dim=1)
    if eos_rows.any():  # stopped at the config's eos: nothing generated after it
        assert out.sequences.shape[1] < 5 + 30
    assert start[0, 0].item() == model.config.bos_token_id and start.shape == (1, 4)


def test_free_function_validates_the_merged_settings(model):
    with pytest.raises(ValueError, match="max_length"):
        generate(model, _prompt(1), GenerationConfig(max_length=3))
    # Valid alone, invalid once merged with the model's generation_config (sampling at temperature 0).
    saved = model.generation_config
    model.generation_config = GenerationConfig(do_sample=True)
    try:
        with pytest.raises(ValueError, match="temperature"):
            generate(model, _prompt(1), GenerationConfig(temperature=0.0))
    finally:
        model.generation_config = saved


def test_generation_config_is_keyword_only():
    with pytest.raises(TypeError):
        GenerationConfig(20)  # type: ignore[misc]
    assert GenerationConfig(max_length=20).max_length == 20
