"""from_pretrained: key handling, tied weights, dtype rules, sharded/variant/subfolder/pickle checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import xf_load
from xf_load._saving import save_safetensors
from xf_load.configuration_utils import PretrainedConfig
from xf_load.errors import CheckpointNotFoundError, ShapeMismatchError
from xf_load.modeling_utils import PreTrainedModel
from xf_load.models.llama import LlamaForCausalLM, LlamaModel, LlamaPreTrainedModel


def _logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def test_loads_without_initialising_loaded_weights(save_hf, monkeypatch):
    path = save_hf("LlamaForCausalLM")
    calls = []
    original = LlamaPreTrainedModel._init_weights

    def spy(self, module):
        if any(p.device.type != "meta" for p in module.parameters(recurse=False)):
            calls.append(type(module).__name__)
        original(self, module)

    monkeypatch.setattr(LlamaPreTrainedModel, "_init_weights", spy)
    model = LlamaForCausalLM.from_pretrained(path)
    assert calls == []  # built on meta: nothing initialised and then overwritten
    assert not model.training and model.device.type == "cpu"
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert model.model.rotary_emb.inv_freq.device.type == "cpu"


def test_head_loads_base_checkpoint_and_base_loads_head_checkpoint(save_hf, load_hf, batch):
    base_path = save_hf("LlamaModel", name="base")
    head, info = LlamaForCausalLM.from_pretrained(base_path, output_loading_info=True)
    assert info["missing_keys"] == ["lm_head.weight"] and info["unexpected_keys"] == []
    assert head.lm_head.weight.std() > 0  # initialised by the family's init, not left empty
    theirs = load_hf(base_path, "LlamaModel")
    with torch.no_grad():
        torch.testing.assert_close(
            head.model(**batch).last_hidden_state[batch["attention_mask"].bool()],
            theirs(**batch).last_hidden_state[batch["attention_mask"].bool()],
            atol=1e-5,
            rtol=0,
        )

    head_path = save_hf("LlamaForCausalLM", name="head")
    base, info = LlamaModel.from_pretrained(head_path, output_loading_info=True)
    assert info["unexpected_keys"] == ["lm_head.weight"] and info["missing_keys"] == []
    theirs = load_hf(head_path, "LlamaForCausalLM")
    torch.testing.assert_close(base.embed_tokens.weight, theirs.model.embed_tokens.weight)


def test_tied_checkpoint_that_stores_only_the_head(save_hf, batch, tmp_path):
    path = save_hf("LlamaForCausalLM", tie_word_embeddings=True)
    reference = LlamaForCausalLM.from_pretrained(path)
    state = {k: v for k, v in reference.state_dict().items() if k != "model.embed_tokens.weight"}
    state["lm_head.weight"] = reference.lm_head.weight.detach().clone()
    save_safetensors(state, path / "model.safetensors")
    model, info = LlamaForCausalLM.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == [] and info["unexpected_keys"] == []
    assert model.lm_head.weight is model.model.embed_tokens.weight
    torch.testing.assert_close(_logits(model, batch), _logits(reference, batch))


def test_untied_head_is_not_tied(save_hf):
    model = LlamaForCausalLM.from_pretrained(save_hf("LlamaForCausalLM", tie_word_embeddings=False))
    assert model.lm_head.weight is not model.model.embed_tokens.weight
    assert not torch.equal(model.lm_head.weight, model.model.embed_tokens.weight)


class _LegacyConfig(PretrainedConfig):
    model_type = "legacy-test"


class _LegacyModel(PreTrainedModel):
    config_class = _LegacyConfig

    def __init__(self, config):
        super().__init__(config)
        self.dense = nn.Linear(4, 4)
        self.LayerNorm = nn.LayerNorm(4)
        self.post_init()


def test_legacy_gamma_beta_names_are_renamed(tmp_path):
    _LegacyConfig().save_pretrained(tmp_path)
    w = torch.randn(4)
    b = torch.randn(4)
    state = {
        "dense.weight": torch.randn(4, 4),
        "dense.bias": torch.randn(4),
        "LayerNorm.gamma": w,
        "LayerNorm.beta": b,
    }
    save_safetensors(state, tmp_path / "model.safetensors")
    model, info = _LegacyModel.from_pretrained(tmp_path, output_loading_info=True)
    assert info == {
        "missing_keys": [],
        "unexpected_keys": [],
        "mismatched_keys": [],
        "bytes_read": 4 * (16 + 3 * 4),
    }
    torch.testing.assert_close(model.LayerNorm.weight.data, w)
    torch.testing.assert_close(model.LayerNorm.bias.data, b)


def test_shape_mismatch_names_key_file_shapes_and_the_fix(save_hf, load_hf):
    path = save_hf("LlamaForSequenceClassification", num_labels=3)
    with pytest.raises(ShapeMismatchError) as e:
        xf_load.AutoModelForSequenceClassification.from_pretrained(path, num_labels=5)
    message = str(e.value)
    assert "'score.weight'" in message and "model.safetensors" in message
    assert "[3, 64]" in message and "[5, 64]" in message and "ignore_mismatched_sizes=True" in message
    assert isinstance(e.value, ValueError) and e.value.found == (3, 64) and e.value.expected == (5, 64)

    model, info = xf_load.AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert info["mismatched_keys"] == [("score.weight", (3, 64), (5, 64))]
    assert model.score.weight.shape == (5, 64) and model.score.weight.std() > 0
    theirs = load_hf(path, "LlamaForSequenceClassification")
    torch.testing.assert_close(model.model.norm.weight, theirs.model.norm.weight)


def test_dtype_rules(save_hf, batch):
    path = save_hf("LlamaForCausalLM", dtype=torch.bfloat16)
    assert LlamaForCausalLM.from_pretrained(path).dtype == torch.bfloat16  # "auto": config.dtype
    assert LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).dtype == torch.float32
    model = LlamaForCausalLM.from_pretrained(path, dtype="float16")
    assert model.dtype == torch.float16 and model.config.dtype == "float16"
    assert model.model.rotary_emb.inv_freq.dtype == torch.float32  # computed buffers keep their dtype
    # no dtype in config.json: "auto" falls back to the checkpoint's dtype
    import json

    data = json.loads((path / "config.json").read_text())
    data.pop("dtype")
    (path / "config.json").write_text(json.dumps(data))
    assert LlamaForCausalLM.from_pretrained(path).dtype == torch.bfloat16
    assert LlamaForCausalLM.from_pretrained(path, dtype=None).dtype == torch.float32


def test_sharded_variant_and_subfolder_checkpoints(save_hf, load_hf, batch, tmp_path):
    sharded = save_hf("LlamaForCausalLM", save_kwargs={"max_shard_size": "40KB"})
    assert (sharded / "model.safetensors.index.json").exists()
    reference = _logits(load_hf(sharded, "LlamaForCausalLM"), batch)
    torch.testing.assert_close(_logits(LlamaForCausalLM.from_pretrained(sharded), batch), reference)

    model = LlamaForCausalLM.from_pretrained(sharded)
    model.save_pretrained(tmp_path / "repo" / "sub", variant="v1")
    assert (tmp_path / "repo" / "sub" / "model.v1.safetensors").exists()
    with pytest.raises(CheckpointNotFoundError, match=r"model.safetensors or model.safetensors.index.json"):
        LlamaForCausalLM.from_pretrained(tmp_path / "repo", subfolder="sub")
    loaded = LlamaForCausalLM.from_pretrained(tmp_path / "repo", subfolder="sub", variant="v1")
    torch.testing.assert_close(_logits(loaded, batch), reference)


def test_pickle_checkpoints_need_explicit_opt_in(save_hf, batch):
    path = save_hf("LlamaForCausalLM")
    reference = LlamaForCausalLM.from_pretrained(path)
    torch.save(reference.state_dict(), path / "pytorch_model.bin")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointNotFoundError, match="use_safetensors=False"):
        LlamaForCausalLM.from_pretrained(path)
    model = LlamaForCausalLM.from_pretrained(path, use_safetensors=False)
    torch.testing.assert_close(_logits(model, batch), _logits(reference, batch))


def test_generation_config_from_its_file_or_from_the_model_config(save_hf, tmp_path):
    path = save_hf("LlamaForCausalLM", bos_token_id=5, eos_token_id=6)
    model = LlamaForCausalLM.from_pretrained(path)
    assert model.generation_config.eos_token_id == 6 and model.generation_config.bos_token_id == 5
    (path / "generation_config.json").unlink()
    model = LlamaForCausalLM.from_pretrained(path)
    assert model.generation_config.eos_token_id == 6
    model.generation_config.max_new_tokens = 7
    model.save_pretrained(tmp_path)
    assert LlamaForCausalLM.from_pretrained(tmp_path).generation_config.max_new_tokens == 7
    assert LlamaModel.from_pretrained(path).generation_config is None  # a base model does not generate


def test_loads_from_the_hugging_face_cache_offline(save_hf, tmp_path, batch):
    from xf_core.testing import make_hf_cache, patch_env

    path = save_hf("LlamaForCausalLM", save_kwargs={"max_shard_size": "40KB"})
    files = {p.name: p.read_bytes() for p in path.iterdir()}
    cache = tmp_path / "hub"
    make_hf_cache(cache, "org/tiny-llama", files, revision="v1")
    with patch_env(HF_HUB_OFFLINE="1"):
        model = xf_load.AutoModelForCausalLM.from_pretrained("org/tiny-llama", cache_dir=cache, revision="v1")
        with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
            xf_load.AutoModelForCausalLM.from_pretrained("org/tiny-llama", cache_dir=cache, revision="v2")
    torch.testing.assert_close(_logits(model, batch), _logits(LlamaForCausalLM.from_pretrained(path), batch))


def test_unknown_keyword_is_an_error_and_torch_dtype_is_accepted(save_hf):
    from xf_core.errors import XfConfigError

    path = save_hf("LlamaForCausalLM")
    with pytest.raises(XfConfigError, match="unexpected keyword argument.*hiden_size"):
        LlamaForCausalLM.from_pretrained(path, hiden_size=32)
    model = LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16, low_cpu_mem_usage=True)
    assert model.dtype == torch.bfloat16


def test_auto_model_passes_config_overrides_and_rejects_typos(save_hf):
    path = save_hf("LlamaForCausalLM")
    model = xf_load.AutoModelForCausalLM.from_pretrained(path, rms_norm_eps=1e-3)
    assert model.config.rms_norm_eps == 1e-3 and model.model.norm.eps == 1e-3
    with pytest.raises(ValueError, match="rms_norm_epz"):
        xf_load.AutoModelForCausalLM.from_pretrained(path, rms_norm_epz=1e-3)
    with pytest.raises(ValueError, match="no masked lm head"):
        xf_load.AutoModelForMaskedLM.from_pretrained(path)
