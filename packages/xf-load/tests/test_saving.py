"""save_pretrained: safetensors layout, sharding, tied duplicates, stale shards, and round trips with transformers."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import xf_load
from xf_load._saving import parse_size
from xf_load.models.llama import LlamaForCausalLM


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shard", [None, "30KB"])
def test_round_trip_transformers_to_xf_to_transformers(dtype, shard, save_hf, load_hf, batch, tmp_path):
    path = save_hf("LlamaForCausalLM", dtype=dtype, tie_word_embeddings=True)
    theirs = load_hf(path, "LlamaForCausalLM")
    ours = xf_load.AutoModelForCausalLM.from_pretrained(path)
    assert ours.dtype == dtype
    out = tmp_path / "xf"
    ours.save_pretrained(out, **({"max_shard_size": shard} if shard else {}))
    files = sorted(p.name for p in out.iterdir())
    if shard:
        shards = [f for f in files if f.startswith("model-")]
        assert "model.safetensors.index.json" in files and len(shards) > 2
        assert shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
        index = json.loads((out / "model.safetensors.index.json").read_text())
        n_bytes = sum(p.numel() * p.element_size() for p in ours.parameters())
        assert index["metadata"]["total_size"] == n_bytes
        assert set(index["weight_map"]) == set(ours.state_dict()) - {"lm_head.weight"}
    else:
        assert "model.safetensors" in files
    assert not [f for f in files if f.startswith(".tmp")]
    with safe_open(out / next(f for f in files if f.endswith(".safetensors")), "pt") as f:
        assert f.metadata() == {"format": "pt"}
    back = load_hf(out, "LlamaForCausalLM")
    assert back.dtype == dtype
    with torch.no_grad():
        torch.testing.assert_close(back(**batch).logits, theirs(**batch).logits, atol=0, rtol=0)
    ours_again = LlamaForCausalLM.from_pretrained(out)
    with torch.no_grad():
        torch.testing.assert_close(ours_again(**batch).logits, ours(**batch).logits, atol=0, rtol=0)


def test_xf_model_saved_and_loaded_by_transformers(tmp_path, load_hf, batch):
    from xf_load.models.llama import Qwen3Config
    from xf_load.testing import tiny_config

    torch.manual_seed(0)
    config = Qwen3Config(**tiny_config("Qwen3ForCausalLM", head_dim=16))
    ours = xf_load.AutoModelForCausalLM.from_config(config).eval()
    assert type(ours).__name__ == "Qwen3ForCausalLM"
    ours.save_pretrained(tmp_path)
    theirs = load_hf(tmp_path, "Qwen3ForCausalLM")
    with torch.no_grad():
        a, b = ours(**batch).logits, theirs(**batch).logits
    valid = batch["attention_mask"].bool()
    torch.testing.assert_close(a[valid], b[valid], atol=1e-5, rtol=0)


def test_saving_again_removes_stale_shards(save_hf, tmp_path):
    model = LlamaForCausalLM.from_pretrained(save_hf("LlamaForCausalLM"))
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 2
    (tmp_path / "notes.txt").write_text("keep me")
    model.save_pretrained(tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["config.json", "model.safetensors", "notes.txt"] or "generation_config.json" in names
    assert not list(tmp_path.glob("model-*")) and not (tmp_path / "model.safetensors.index.json").exists()
    assert LlamaForCausalLM.from_pretrained(tmp_path).num_parameters() == model.num_parameters()


def test_parse_size():
    assert parse_size("5GB") == 5 * 10**9
    assert parse_size("2GiB") == 2 * 2**30
    assert parse_size("500 kb") == 500_000
    assert parse_size(123) == 123
    with pytest.raises(ValueError, match="max_shard_size='lots'"):
        parse_size("lots")
