"""``load_weights``: a saved directory's weights into an existing model, with from_pretrained's checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xf_load import load_weights
from xf_load._saving import save_safetensors
from xf_load.errors import CheckpointMismatchError, CheckpointNotFoundError, ShapeMismatchError
from xf_load.models.llama import LlamaConfig, LlamaForCausalLM, LlamaModel

TINY = {
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vocab_size": 40,
    "max_position_embeddings": 32,
}


def _model(seed: int, **overrides) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**{**TINY, **overrides}))


def _assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        torch.testing.assert_close(sa[name], sb[name], rtol=0, atol=0)


@pytest.mark.parametrize("shard", [None, "2KB"], ids=["single", "sharded"])
def test_round_trip_single_and_sharded(tmp_path, shard):
    saved = _model(0)
    saved.save_pretrained(tmp_path, **({"max_shard_size": shard} if shard else {}))
    assert (tmp_path / "model.safetensors.index.json").is_file() == bool(shard)
    target = _model(1)
    assert not torch.equal(target.lm_head.weight, saved.lm_head.weight)
    result = load_weights(target, tmp_path)
    assert result.missing_keys == [] and result.unexpected_keys == []
    _assert_same_weights(target, saved)


def test_tied_weights_are_stored_once_and_stay_tied(tmp_path):
    saved = _model(0, tie_word_embeddings=True)
    saved.save_pretrained(tmp_path)
    target = _model(1, tie_word_embeddings=True)
    load_weights(target, tmp_path)  # the checkpoint has no lm_head.weight: it is the embedding
    assert target.lm_head.weight is target.model.embed_tokens.weight
    _assert_same_weights(target, saved)


def test_weights_keep_the_models_dtype(tmp_path):
    _model(0).to(torch.bfloat16).save_pretrained(tmp_path)
    target = _model(1)
    load_weights(target, tmp_path)
    assert target.lm_head.weight.dtype == torch.float32


def test_variant(tmp_path):
    saved = _model(0)
    saved.save_pretrained(tmp_path, variant="ema")
    with pytest.raises(CheckpointNotFoundError):
        load_weights(_model(1), tmp_path)
    target = _model(1)
    load_weights(target, tmp_path, variant="ema")
    _assert_same_weights(target, saved)


def test_missing_keys_name_the_keys_and_the_directory_and_load_nothing(tmp_path):
    torch.manual_seed(0)
    LlamaModel(LlamaConfig(**TINY)).save_pretrained(tmp_path)  # a base checkpoint: no lm_head
    target = _model(1)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(target, tmp_path)
    assert info.value.missing_keys == ["lm_head.weight"] and info.value.unexpected_keys == []
    assert str(tmp_path) in str(info.value) and "lm_head.weight" in str(info.value)
    assert info.value.path == str(tmp_path) and isinstance(info.value, ValueError)
    for name, value in target.state_dict().items():
        assert torch.equal(value, before[name]), name  # nothing was overwritten


def test_unexpected_keys_and_strict_false(tmp_path):
    saved = _model(0)
    saved.save_pretrained(tmp_path)
    torch.manual_seed(1)
    base = LlamaModel(LlamaConfig(**TINY))
    with pytest.raises(CheckpointMismatchError, match="unexpected") as info:
        load_weights(base, tmp_path)  # a head checkpoint into the base model: lm_head has no place
    assert info.value.unexpected_keys == ["lm_head.weight"] and info.value.missing_keys == []
    result = load_weights(base, tmp_path, strict=False)
    assert result.unexpected_keys == ["lm_head.weight"]
    torch.testing.assert_close(base.embed_tokens.weight, saved.model.embed_tokens.weight, rtol=0, atol=0)


def test_shape_mismatch_names_key_and_file_before_loading(tmp_path):
    _model(0).save_pretrained(tmp_path)
    target = _model(1, vocab_size=48)
    before = target.model.norm.weight.clone()
    with pytest.raises(ShapeMismatchError) as info:
        load_weights(target, tmp_path)
    assert info.value.found[0] == 40 and info.value.expected[0] == 48
    assert str(tmp_path) in str(info.value)
    assert torch.equal(target.model.norm.weight, before)


def test_not_a_directory_and_no_weights(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="is not a directory"):
        load_weights(_model(0), tmp_path / "absent")
    with pytest.raises(CheckpointNotFoundError, match="model.safetensors"):
        load_weights(_model(0), tmp_path)


def test_plain_module_is_matched_key_for_key(tmp_path):
    torch.manual_seed(0)
    saved = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    save_safetensors(dict(saved.state_dict()), tmp_path / "model.safetensors")
    target = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    load_weights(target, tmp_path)
    _assert_same_weights(target, saved)
    with pytest.raises(CheckpointMismatchError) as info:
        load_weights(nn.Sequential(nn.Linear(3, 4)), tmp_path)
    assert info.value.unexpected_keys == ["1.bias", "1.weight"]
