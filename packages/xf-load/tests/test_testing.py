"""xf_load.testing itself: every family's tiny checkpoint loads in xf and in transformers with equal logits,
seeds make checkpoints and fixtures deterministic, and importing xf_load pulls in neither this module nor
transformers."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from xf_core.testing import imported_modules
from xf_load import testing

pytest.importorskip("transformers")

HEADS = {  # one class per family, with the output compared
    "LlamaForCausalLM": "logits",
    "MistralForCausalLM": "logits",
    "Qwen2ForCausalLM": "logits",
    "Qwen3ForCausalLM": "logits",
    "GPT2LMHeadModel": "logits",
    "BertForMaskedLM": "logits",
    "RobertaForSequenceClassification": "logits",
    "BertForQuestionAnswering": "start_logits",
}


@pytest.mark.parametrize("arch", list(HEADS))
def test_tiny_checkpoint_loads_in_xf_and_transformers_with_equal_outputs(arch, tmp_path):
    path = testing.save_tiny_transformers_checkpoint(arch, tmp_path / arch)
    ours, theirs = testing.load_pair(path, arch)
    assert type(ours).__name__ == type(theirs).__name__ == arch
    assert ours.config.num_hidden_layers == 2
    ids = torch.randint(3, 99, (2, 7), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = getattr(ours(input_ids=ids), HEADS[arch]), getattr(theirs(input_ids=ids), HEADS[arch])
    assert a.shape == b.shape and a.abs().max() > 0
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_head_label_counts_and_overrides():
    assert testing.tiny_config("BertForQuestionAnswering")["num_labels"] == 2
    assert testing.tiny_config("BertForTokenClassification")["num_labels"] == 3
    assert "num_labels" not in testing.tiny_config("BertForMaskedLM")
    labels = {0: "a", 1: "b", 2: "c", 3: "d"}
    assert "num_labels" not in testing.tiny_config("BertForTokenClassification", id2label=labels)
    assert testing.tiny_config("Qwen3ForCausalLM", head_dim=24)["head_dim"] == 24
    assert "head_dim" not in testing.FAMILIES["Qwen3"].tiny  # overrides never write into the table
    with pytest.raises(TypeError):
        testing.FAMILIES["Llama"].tiny["hidden_size"] = 8  # read-only


def test_family_of_takes_the_longest_prefix_and_names_the_known_ones():
    assert testing.family_of("Qwen2ForCausalLM") == "Qwen2"
    assert testing.family_of("RobertaConfig") == "Roberta"
    with pytest.raises(ValueError, match=r"'T5ForConditionalGeneration'.*Llama, Mistral"):
        testing.family_of("T5ForConditionalGeneration")


def test_config_class_must_be_the_family_one():
    with pytest.raises(ValueError, match="built on MistralConfig, not on config_class='LlamaConfig'"):
        testing.tiny_transformers_model("MistralForCausalLM", config_class="LlamaConfig")


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    save = testing.save_tiny_transformers_checkpoint
    a = load_file(save("LlamaForCausalLM", tmp_path / "a") / "model.safetensors")
    b = load_file(save("LlamaForCausalLM", tmp_path / "b") / "model.safetensors")
    c = load_file(save("LlamaForCausalLM", tmp_path / "c", seed=1) / "model.safetensors")
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(
        a["model.layers.0.self_attn.q_proj.weight"], c["model.layers.0.self_attn.q_proj.weight"]
    )


def test_norms_are_perturbed_unless_asked_not_to():
    perturbed = testing.tiny_transformers_model("GPT2LMHeadModel")
    plain = testing.tiny_transformers_model("GPT2LMHeadModel", perturb_norms=False)
    for model, ones in ((perturbed, False), (plain, True)):
        weight = model.transformer.ln_f.weight
        assert torch.equal(weight, torch.ones_like(weight)) is ones
    # the other weights are drawn first, so they do not move
    torch.testing.assert_close(perturbed.transformer.wte.weight, plain.transformer.wte.weight, atol=0, rtol=0)


def test_dtype_and_save_kwargs_reach_the_checkpoint(tmp_path):
    path = testing.save_tiny_transformers_checkpoint(
        "LlamaForCausalLM", tmp_path, dtype=torch.bfloat16, save_kwargs={"max_shard_size": "40KB"}
    )
    assert (path / "model.safetensors.index.json").is_file()
    assert testing.load_with_transformers(path).dtype == torch.bfloat16  # class from config.json


def test_fixture_functions_are_deterministic(tmp_path):
    assert testing.token_dataset() == testing.token_dataset()
    first, second = testing.left_padded_batch(), testing.left_padded_batch()
    assert all(torch.equal(first[k], second[k]) for k in first)
    toy_a, toy_b, toy_c = testing.make_toy(), testing.make_toy(), testing.make_toy(seed=1)
    assert all(torch.equal(p, q) for p, q in zip(toy_a.parameters(), toy_b.parameters(), strict=True))
    assert not torch.equal(toy_a.head.weight, toy_c.head.weight)


def test_checkpoint_factories_name_and_cache(tmp_path):
    save = testing.tiny_checkpoint_factory(tmp_path / "fresh")
    assert save("GPT2LMHeadModel") == tmp_path / "fresh" / "hf-GPT2LMHeadModel"
    assert save("GPT2LMHeadModel", name="x") == tmp_path / "fresh" / "x"
    small = testing.tiny_checkpoint_factory(tmp_path / "small", vocab_size=50)
    assert small("GPT2LMHeadModel").joinpath("config.json").read_text().count('"vocab_size": 50') == 1
    assert (
        '"vocab_size": 60'
        in small("GPT2LMHeadModel", name="y", vocab_size=60).joinpath("config.json").read_text()
    )
    cached = testing.cached_checkpoint_factory(tmp_path / "cached", perturb_norms=False)
    one = cached("GPT2LMHeadModel")
    assert cached("GPT2LMHeadModel") == one
    assert cached("GPT2LMHeadModel", n_layer=1) != one


def test_greedy_reference_equals_generate_on_the_toy():
    model = testing.make_toy()
    ids = torch.randint(0, 97, (2, 5), generator=torch.Generator().manual_seed(0))
    want = testing.full_greedy(model, ids, 6)
    assert torch.equal(model.generate(ids, max_new_tokens=6, do_sample=False), want)


def test_importing_xf_load_imports_neither_testing_nor_transformers():
    modules = imported_modules("import xf_load, xf_load.auto")
    assert "xf_load.testing" not in modules and "transformers" not in modules
    modules = imported_modules("import xf_load.testing")
    assert "transformers" not in modules
