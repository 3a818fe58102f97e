"""The call-tree recorder: xf's Llama against transformers' layer by layer, and a perturbed weight found."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from xf_load import LlamaForCausalLM
from xf_load.model_debugging_utils import first_difference, model_addition_debugger_context

CONFIG = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 64,
    "max_position_embeddings": 32,
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama")
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**CONFIG)).eval()
    hf.save_pretrained(path)
    return LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval(), hf


def _trace(model, ids, **kwargs):
    with torch.no_grad(), model_addition_debugger_context(model, **kwargs) as trace:
        model(input_ids=ids)
    return trace


def test_same_weights_agree_and_a_perturbed_weight_is_found_at_its_layer(pair, tmp_path):
    ours, hf = pair
    ids = torch.tensor([[1, 5, 9, 3, 7]])
    reference = _trace(hf, ids, save_tensors=True)
    assert first_difference(_trace(ours, ids, save_tensors=True), reference) is None

    with torch.no_grad():
        ours.model.layers[1].mlp.down_proj.weight[0, 0] += 0.5
    try:
        found = first_difference(_trace(ours, ids, save_tensors=True), reference)
        assert (
            found is not None
            and found["path"] == "model.layers.1.mlp.down_proj"
            and found["max_abs_diff"] > 1e-3
        )
        # the summaries alone (no kept tensors) point to the same layer
        found = first_difference(_trace(ours, ids), _trace(hf, ids))
        assert found is not None and found["path"] == "model.layers.1.mlp.down_proj"
    finally:
        with torch.no_grad():
            ours.model.layers[1].mlp.down_proj.weight[0, 0] -= 0.5


def test_trace_files_nest_calls_and_keep_tensors(pair, tmp_path):
    ours, _ = pair
    ids = torch.tensor([[1, 2, 3]])
    trace = _trace(ours, ids, debug_path=tmp_path, save_tensors=True)
    (root,) = json.loads((tmp_path / "trace.json").read_text())
    assert root["path"] == "" and root["module"] == "LlamaForCausalLM"
    model = next(c for c in root["children"] if c["path"] == "model")
    layer0 = next(c for c in model["children"] if c["path"] == "model.layers.0")
    assert {c["path"] for c in layer0["children"]} >= {"model.layers.0.self_attn", "model.layers.0.mlp"}
    logits = root["outputs"][0]
    assert logits["shape"] == [1, 3, 64] and logits["nonfinite"] == 0 and "std" in logits
    assert trace.calls[-1].path == "" and root["index"] == len(trace.calls) - 1  # parents complete last

    from safetensors.torch import load_file

    tensors = load_file(tmp_path / "tensors.safetensors")
    key = f"{root['index']}.<root>.outputs.0"
    torch.testing.assert_close(tensors[key], ours(input_ids=ids).logits.detach())


def test_hooks_are_removed_and_nonfinite_values_counted(pair):
    ours, _ = pair
    before = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in ours.modules())
    with torch.no_grad(), model_addition_debugger_context(ours.model.norm) as trace:
        ours.model.norm(torch.tensor([[[float("nan")] + [1.0] * 31]]))
    after = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in ours.modules())
    assert before == after
    assert trace.roots[0].outputs[0]["nonfinite"] == 32  # RMSNorm spreads the NaN over the row
