"""Up-front checks of sizes and inputs: lengths past a learned position table, buffers past the memory,
token ids outside the vocabulary and empty inputs are refused with one typed error naming the value and the
limit, before any buffer is allocated (issue 18)."""

from __future__ import annotations

import os
import sys

import pytest
import torch

from xf_load.cache import StaticCache
from xf_load.errors import GenerationLengthError, GenerationMemoryError, InputIdsError
from xf_load.generation import _limits
from xf_load.models.bert import BertConfig, BertModel
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
        vocab_size=96,
        max_position_embeddings=16,
    )
    return LlamaForCausalLM(config).eval()


def _gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=96, n_positions=32)).eval()


def _bert() -> BertModel:
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, vocab_size=96
    )
    return BertModel(config).eval()


PROMPT = torch.tensor([[1, 2, 3]])


# ---------------------------------------------------------------------------------------------- lengths


def test_max_new_tokens_past_the_learned_positions_names_the_value_the_limit_and_the_room():
    with pytest.raises(
        GenerationLengthError, match=r"max_new_tokens=1000000000.*n_positions=32.*<= 29"
    ) as info:
        _gpt2().generate(PROMPT, max_new_tokens=10**9)
    assert (info.value.key, info.value.limit) == ("max_new_tokens", 32)


def test_max_length_past_the_learned_positions_is_refused_and_up_to_them_runs():
    model = _gpt2()
    with pytest.raises(GenerationLengthError, match=r"max_length=33.*n_positions=32.*max_length <= 32"):
        model.generate(PROMPT, max_length=33)
    assert model.generate(PROMPT, max_length=32, eos_token_id=None).shape == (1, 32)


def test_a_prompt_that_fills_the_positions_says_to_truncate_it():
    with pytest.raises(GenerationLengthError, match="truncate it"):
        _gpt2().generate(torch.ones(1, 32, dtype=torch.long), max_new_tokens=1)


def test_rope_models_generate_past_max_position_embeddings_as_in_transformers():
    out = _llama().generate(PROMPT, max_new_tokens=30, eos_token_id=None)
    assert out.shape == (1, 33)  # max_position_embeddings is 16


# ---------------------------------------------------------------------------------------------- memory


def test_a_huge_beam_count_is_refused_with_the_estimate_and_the_limit(monkeypatch):
    monkeypatch.setattr(_limits, "available_memory", lambda device: 16 * 2**30)  # the same on every machine
    with pytest.raises(
        GenerationMemoryError, match=r"num_beams=10000000.*16\.0 GiB is available on cpu"
    ) as info:
        _llama().generate(PROMPT, num_beams=10**7, max_new_tokens=2)
    assert info.value.estimate > info.value.available == 16 * 2**30


def test_available_memory_is_read_from_the_machine(monkeypatch):
    free = _limits.available_memory(torch.device("cpu"))
    assert free is not None and free > 0
    assert _limits.available_memory(torch.device("meta")) is None
    monkeypatch.setitem(sys.modules, "psutil", None)  # without psutil: the physical memory
    assert _limits.available_memory(torch.device("cpu")) == os.sysconf("SC_PHYS_PAGES") * os.sysconf(
        "SC_PAGE_SIZE"
    )


def test_huge_max_new_tokens_on_a_rope_model_is_refused_by_the_memory_estimate(monkeypatch):
    monkeypatch.setattr(_limits, "available_memory", lambda device: 2**20)  # 1 MiB free
    model = _llama()
    with pytest.raises(
        GenerationMemoryError, match=r"KV cache 2\.4 MiB.*max_new_tokens=10000 .*1\.0 MiB"
    ) as info:
        model.generate(PROMPT, max_new_tokens=10_000)
    assert info.value.available == 2**20
    assert model.generate(PROMPT, max_new_tokens=4).shape[1] <= 7  # a small call still fits


def test_the_kv_estimate_is_what_a_static_cache_allocates():
    model = _llama()
    cache = StaticCache(max_cache_len=12)
    model.generate(PROMPT.repeat(2, 1), max_length=12, past_key_values=cache, eos_token_id=None)
    allocated = sum(t.nbytes for t in (*cache.keys, *cache.values))
    parts = _limits.estimate_generate_bytes(model, rows=2, prompt_length=3, max_length=12, beams=False)
    assert parts["KV cache"] == allocated


# ---------------------------------------------------------------------------------------------- token ids


@pytest.mark.parametrize("bad", [96, 500, -3])
@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_token_ids_outside_the_vocabulary_are_refused_in_forward_and_generate(family, bad):
    model = {"llama": _llama, "gpt2": _gpt2}[family]()
    ids = torch.tensor([[1, 2, bad]])
    with pytest.raises(InputIdsError, match=rf"token id {bad} at index \(0, 2\).*vocab_size=96") as info:
        model(input_ids=ids)
    assert (info.value.value, info.value.limit) == (bad, 96)
    with pytest.raises(InputIdsError, match=rf"token id {bad} .*vocab_size=96"):
        model.generate(ids, max_new_tokens=2)


def test_bert_checks_token_ids_and_token_type_ids():
    model = _bert()
    with pytest.raises(InputIdsError, match=r"token id 96 .*vocab_size=96"):
        model(input_ids=torch.tensor([[1, 96]]))
    with pytest.raises(InputIdsError, match=r"token_type_ids holds token id 2 .*type_vocab_size=2"):
        model(input_ids=torch.tensor([[1, 5]]), token_type_ids=torch.tensor([[0, 2]]))


def test_generate_checks_the_prompt_once_not_at_every_decode_step(monkeypatch):
    calls = []
    real = torch.aminmax
    monkeypatch.setattr(torch, "aminmax", lambda t: calls.append(t.shape) or real(t))
    _llama().generate(PROMPT, max_new_tokens=6, eos_token_id=None)
    assert calls == [PROMPT.shape]
    calls.clear()
    _llama()(input_ids=PROMPT)  # a plain forward checks its own ids
    assert calls == [PROMPT.shape]


# ---------------------------------------------------------------------------------------------- empty inputs


@pytest.mark.parametrize("shape", [(1, 0), (0, 3)])
def test_empty_prompts_and_empty_batches_are_refused_by_generate(shape):
    with pytest.raises(InputIdsError, match=rf"input_ids has shape \({shape[0]}, {shape[1]}\)"):
        _llama().generate(torch.zeros(shape, dtype=torch.long), max_new_tokens=2)


@pytest.mark.parametrize("make", [_llama, _gpt2, _bert])
def test_a_forward_of_zero_tokens_is_refused(make):
    with pytest.raises(InputIdsError, match=r"input_ids has shape \(1, 0\)"):
        make()(input_ids=torch.zeros(1, 0, dtype=torch.long))
