"""LoadOptions/HubOptions: built once by from_pretrained, each wrong value named; the tp_plan seam;
get_memory_footprint on a float model."""

from __future__ import annotations

import pytest
import torch

from xf_core import HubOptions
from xf_core.errors import XfConfigError
from xf_load import LoadOptions, options
from xf_load.auto import AutoModelForCausalLM
from xf_load.errors import LoadOptionsError, QuantizationError, TensorParallelUnavailableError
from xf_load.models.llama import LlamaForCausalLM


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"dtype": "float17"}, "dtype"),
        ({"dtype": 3}, "dtype"),
        ({"device_map": 2.5}, "device_map"),
        ({"max_memory": "10GiB"}, "max_memory"),
        ({"variant": 16}, "variant"),
        ({"use_safetensors": "yes"}, "use_safetensors"),
        ({"ignore_mismatched_sizes": None}, "ignore_mismatched_sizes"),
        ({"attn_implementation": "flash"}, "attn_implementation"),
        ({"quantization_config": 4}, "quantization_config"),
        ({"tp_plan": ["q_proj"]}, "tp_plan"),
        ({"tp_plan": "auto", "device_map": "cpu"}, "tp_plan"),
        ({"device_mesh": object()}, "device_mesh"),
        ({"dtype": torch.float16, "torch_dtype": torch.bfloat16}, "torch_dtype"),
        ({"revision": 5}, "revision"),
        ({"local_files_only": "no"}, "local_files_only"),
        ({"token": 1.5}, "token"),
    ],
)
def test_a_wrong_option_is_named_before_any_file_is_read(kwargs, field, tmp_path):
    # tmp_path holds no checkpoint at all: the option error comes first.
    with pytest.raises(XfConfigError) as info:
        LlamaForCausalLM.from_pretrained(tmp_path, **kwargs)
    assert info.value.key == field
    assert field in str(info.value)
    if field not in ("revision", "local_files_only", "token"):  # the others are LoadOptions fields
        assert isinstance(info.value, LoadOptionsError)


def test_a_misspelt_keyword_gets_a_suggestion(save_hf):
    path = save_hf("LlamaForCausalLM")
    with pytest.raises(XfConfigError, match=r"revison.*did you mean revision\?") as info:
        LlamaForCausalLM.from_pretrained(path, revison="main")
    assert info.value.key == "revison"


def test_options_objects_are_frozen_and_keyword_only():
    load = LoadOptions(dtype="bfloat16")
    with pytest.raises(AttributeError):
        load.dtype = "float32"  # type: ignore[misc]
    with pytest.raises(TypeError):
        LoadOptions("bfloat16")  # type: ignore[misc]
    kwargs = {"torch_dtype": torch.float16, "variant": "fp16", "num_labels": 3}
    popped = LoadOptions.pop_from(kwargs, base=LoadOptions(ignore_mismatched_sizes=True))
    assert popped.dtype == torch.float16 and popped.variant == "fp16" and popped.ignore_mismatched_sizes
    assert kwargs == {"num_labels": 3}  # what is left are config fields


def test_hub_options_object_reaches_config_and_weights(save_hf, tmp_path):
    path = save_hf("LlamaForCausalLM", save_kwargs={"max_shard_size": "100KB"})
    (tmp_path / "repo").mkdir()
    path.rename(tmp_path / "repo" / "sub")
    hub = HubOptions(subfolder="sub")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "repo", hub=hub)
    assert model.config.hidden_size == 64
    # The loose keyword overrides the object's field.
    with pytest.raises(FileNotFoundError, match="other"):
        AutoModelForCausalLM.from_pretrained(tmp_path / "repo", hub=hub, subfolder="other")


def test_tp_plan_without_a_tensor_parallel_package_is_a_typed_error(save_hf, monkeypatch):
    path = save_hf("LlamaForCausalLM")
    monkeypatch.setattr(options, "TP_HOOKS", {})
    monkeypatch.setattr(options, "_loaded_tp_entry_points", True)
    with pytest.raises(TensorParallelUnavailableError, match=r"xf-parallel.*xf_load\.tp_plans") as info:
        LlamaForCausalLM.from_pretrained(path, tp_plan="auto")
    assert info.value.key == "tp_plan" and isinstance(info.value, ValueError)


def test_a_registered_tp_hook_receives_the_loaded_model(save_hf, monkeypatch):
    path = save_hf("LlamaForCausalLM")
    seen = []

    class RecordingHook(options.TensorParallelHook):
        def apply(self, model):
            seen.append((self.tp_plan, self.device_mesh, model.model.embed_tokens.weight.device.type))

    monkeypatch.setattr(options, "TP_HOOKS", {"fake": RecordingHook})
    monkeypatch.setattr(options, "_loaded_tp_entry_points", True)
    plan = {"layers.*.self_attn.q_proj": "colwise"}
    LlamaForCausalLM.from_pretrained(path, tp_plan=plan, device_mesh="mesh")
    assert seen == [(plan, "mesh", "cpu")]


@pytest.mark.parametrize("model_class", ["LlamaForCausalLM", "GPT2LMHeadModel", "BertForMaskedLM"])
def test_memory_footprint_of_a_float_model_equals_transformers(model_class, save_hf, load_hf):
    import transformers

    import xf_load.models.bert
    import xf_load.models.gpt2

    configs = {
        "LlamaForCausalLM": {},
        "GPT2LMHeadModel": {"config_class": "GPT2Config", "n_embd": 64, "n_layer": 2, "n_head": 4},
        "BertForMaskedLM": {"config_class": "BertConfig", "num_attention_heads": 4},
    }
    path = save_hf(model_class, **configs[model_class])
    oracle = load_hf(path, model_class)
    module = {"LlamaForCausalLM": xf_load.models.llama, "GPT2LMHeadModel": xf_load.models.gpt2}.get(
        model_class, xf_load.models.bert
    )
    model = getattr(module, model_class).from_pretrained(path)
    assert isinstance(oracle, transformers.PreTrainedModel)
    assert not model.is_quantized and model.hf_quantizer is None
    assert model.get_memory_footprint(return_buffers=False) == oracle.get_memory_footprint(
        return_buffers=False
    )
    # transformers' BERT also keeps position_ids and token_type_ids buffers, which xf's BERT computes instead.
    if model_class != "BertForMaskedLM":
        assert model.get_memory_footprint() == oracle.get_memory_footprint()
    half = getattr(module, model_class).from_pretrained(path, dtype=torch.bfloat16)
    assert half.get_memory_footprint(return_buffers=False) * 2 == model.get_memory_footprint(
        return_buffers=False
    )


def test_dequantize_on_a_float_model_says_it_is_not_quantized(save_hf):
    model = LlamaForCausalLM.from_pretrained(save_hf("LlamaForCausalLM"))
    with pytest.raises(QuantizationError, match="not quantized"):
        model.dequantize()
