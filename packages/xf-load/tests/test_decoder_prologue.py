"""The one decoder prologue (xf_load/_decoder.py), checked through each decoder family that runs it: cache
set-up, positions, masks and ``logits_to_keep`` behave the same in Llama (and its variants) and GPT-2."""

from __future__ import annotations

import inspect

import pytest
import torch

import xf_load
from xf_core.testing import temporary_directory
from xf_load._decoder import decoder_prologue
from xf_load.cache import DynamicCache, StaticCache
from xf_load.models import gpt2, llama

transformers = pytest.importorskip("transformers")

LLAMA = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 64,
    "max_position_embeddings": 16,
}
GPT2 = {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 64, "n_positions": 16}


def _pair(family: str):
    """(transformers model, xf model loaded from transformers' save of it)."""
    torch.manual_seed(0)
    if family == "llama":
        hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA)).eval()
    else:
        hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**GPT2)).eval()
    with temporary_directory() as path:
        hf.save_pretrained(path)
        ours = xf_load.AutoModelForCausalLM.from_pretrained(path).eval()
    return hf, ours


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def pair(request):
    return _pair(request.param)


def _ids(T: int, rows: int = 2) -> torch.Tensor:
    return torch.randint(0, 64, (rows, T), generator=torch.Generator().manual_seed(T))


def test_legacy_tuple_caches_are_refused_naming_the_fix(pair):
    _, ours = pair
    with torch.no_grad():
        cache = ours(_ids(4), use_cache=True).past_key_values
    legacy = tuple(zip(cache.keys, cache.values, strict=True))
    with pytest.raises(ValueError, match="past_key_values is a tuple; pass an xf_load.cache.Cache"):
        ours(_ids(1), past_key_values=legacy)


def test_exactly_one_of_ids_and_embeddings(pair):
    _, ours = pair
    embeds = ours.get_input_embeddings()(_ids(4))
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        ours(_ids(4), inputs_embeds=embeds)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        ours()
    with torch.no_grad():
        torch.testing.assert_close(ours(inputs_embeds=embeds).logits, ours(_ids(4)).logits)


def test_positions_past_the_learned_table_are_refused_and_rope_runs_on(pair):
    """GPT-2's learned table has n_positions rows: more positions are refused, with or without a cache.
    Llama's RoPE has no table: past max_position_embeddings it goes on, exactly as transformers does."""
    hf, ours = pair
    ids = _ids(20)
    with torch.no_grad():
        if isinstance(ours, gpt2.GPT2LMHeadModel):
            with pytest.raises(
                ValueError, match=r"20 positions \(0 cached \+ 20 new\) exceed n_positions=16"
            ):
                ours(ids)
            cache = ours(ids[:, :12], use_cache=True).past_key_values
            with pytest.raises(ValueError, match=r"17 positions \(12 cached \+ 5 new\)"):
                ours(ids[:, 12:17], past_key_values=cache)
        else:
            torch.testing.assert_close(ours(ids).logits, hf(ids).logits, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("keep", [1, 3, "tensor"])
def test_logits_to_keep_as_count_or_indices(pair, keep):
    hf, ours = pair
    ids = _ids(7)
    if keep == "tensor":
        keep = torch.tensor([0, 4, 6])
        index = keep
    else:
        index = torch.arange(7 - keep, 7)
    with torch.no_grad():
        full = ours(ids).logits
        kept = ours(ids, logits_to_keep=keep).logits
        theirs = hf(ids, logits_to_keep=keep).logits
    torch.testing.assert_close(kept, full[:, index])
    torch.testing.assert_close(kept, theirs, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="logits_to_keep"):
        ours(ids, logits_to_keep=torch.tensor([[0, 1]]))


def test_cache_made_when_asked_continued_when_passed_and_positions_follow_it(pair):
    _, ours = pair
    ids = _ids(9)
    with torch.no_grad():
        full = ours(ids).logits
        assert ours(ids, use_cache=False).past_key_values is None
        first = ours(ids[:, :6], use_cache=True)
        assert isinstance(first.past_key_values, DynamicCache)
        assert first.past_key_values.get_seq_length() == 6
        rest = ours(ids[:, 6:], past_key_values=first.past_key_values)  # positions 6.. from the cache
    torch.testing.assert_close(rest.logits, full[:, 6:], atol=1e-5, rtol=1e-4)


def test_no_cache_under_gradient_checkpointing_in_training(pair):
    _, ours = pair
    ours.gradient_checkpointing_enable()
    ours.train()
    try:
        passed = DynamicCache()
        out = ours(_ids(5), use_cache=True, past_key_values=passed)
        assert out.past_key_values is None
        assert passed.get_seq_length() == 0  # a recomputed block would have written twice
    finally:
        ours.gradient_checkpointing_disable()
        ours.eval()


def test_static_cache_always_gets_a_mask_and_sliding_windows_get_their_own(pair):
    _, ours = pair
    base = ours.base_model
    ids = _ids(3, rows=1)
    kwargs = {"attention_mask": None, "position_ids": None, "use_cache": True, "cache_position": None}
    embed = base.get_input_embeddings()
    dynamic = decoder_prologue(base, ids, None, embed=embed, past_key_values=None, **kwargs)
    assert dynamic.masks == {None: None}  # plain causal: SDPA's is_causal path
    static = decoder_prologue(
        base, ids, None, embed=embed, past_key_values=StaticCache(max_cache_len=8), **kwargs
    )
    assert static.masks[None].shape == (1, 1, 3, 8)  # slots 3.. not written yet: hidden
    windows = decoder_prologue(
        base, ids, None, embed=embed, past_key_values=None, sliding_windows=[None, 2, 2], **kwargs
    )
    assert set(windows.masks) == {None, 2} and windows.masks[2] is not None


def test_variants_are_plain_subclasses_with_their_own_model_type():
    cases = {
        "mistral": (llama.MistralForCausalLM, llama.MistralModel, llama.MistralForSequenceClassification),
        "qwen2": (llama.Qwen2ForCausalLM, llama.Qwen2Model, llama.Qwen2ForSequenceClassification),
        "qwen3": (llama.Qwen3ForCausalLM, llama.Qwen3Model, llama.Qwen3ForSequenceClassification),
    }
    bases = (llama.LlamaForCausalLM, llama.LlamaModel, llama.LlamaForSequenceClassification)
    for model_type, classes in cases.items():
        for cls, base in zip(classes, bases, strict=True):
            assert cls.__bases__ == (base,) and cls.config_class.model_type == model_type
            assert cls.__module__ == "xf_load.models.llama" and cls.__qualname__ == cls.__name__
            assert f"class {cls.__name__}({base.__name__})" in inspect.getsource(
                cls
            )  # written, not type()-built
