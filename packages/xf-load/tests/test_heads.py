"""Head kinds as data: every model class declares its head, the auto tables agree, architectures resolve
without importing torch, and the tied-weights mapping is public."""

from __future__ import annotations

import importlib

import pytest
from torch import nn

import xf_load
from xf_load.auto import FAMILIES
from xf_load.heads import HeadKind, architecture_head_kind, head_kind_of

EXPECTED = {
    "LlamaModel": HeadKind.BASE,
    "LlamaForCausalLM": HeadKind.CAUSAL_LM,
    "LlamaForSequenceClassification": HeadKind.SEQUENCE_CLASSIFICATION,
    "MistralForCausalLM": HeadKind.CAUSAL_LM,
    "Qwen2ForSequenceClassification": HeadKind.SEQUENCE_CLASSIFICATION,
    "Qwen3Model": HeadKind.BASE,
    "GPT2Model": HeadKind.BASE,
    "GPT2LMHeadModel": HeadKind.CAUSAL_LM,
    "BertModel": HeadKind.BASE,
    "BertForMaskedLM": HeadKind.MASKED_LM,
    "BertForSequenceClassification": HeadKind.SEQUENCE_CLASSIFICATION,
    "BertForTokenClassification": HeadKind.TOKEN_CLASSIFICATION,
    "BertForQuestionAnswering": HeadKind.QUESTION_ANSWERING,
    "RobertaModel": HeadKind.BASE,
    "RobertaForMaskedLM": HeadKind.MASKED_LM,
    "RobertaForSequenceClassification": HeadKind.SEQUENCE_CLASSIFICATION,
    "RobertaForTokenClassification": HeadKind.TOKEN_CLASSIFICATION,
    "RobertaForQuestionAnswering": HeadKind.QUESTION_ANSWERING,
}

TABLE = [(family.module, kind, name) for family in FAMILIES.values() for kind, name in family.heads.items()]


@pytest.mark.parametrize(("module", "kind", "name"), TABLE, ids=[name for _, _, name in TABLE])
def test_every_class_in_the_auto_tables_declares_the_kind_it_is_listed_under(module, kind, name):
    model_class = getattr(importlib.import_module(module), name)
    family = next(f for f in FAMILIES.values() if f.module == module and f.heads.get(kind) == name)
    if kind == "base" and list(family.heads.values()).count(name) > 1:
        # AutoModel may give a family's task model itself (CLIPModel): it declares that task, listed first
        kind = next(k for k, n in family.heads.items() if n == name)
    assert model_class.head_kind == HeadKind(kind)
    assert head_kind_of(model_class) is HeadKind(kind)
    assert architecture_head_kind(name) is HeadKind(kind)


@pytest.mark.parametrize(("name", "kind"), EXPECTED.items())
def test_each_head_class_reports_its_kind(name, kind):
    family = (
        "bert" if name.startswith(("Bert", "Roberta")) else "gpt2" if name.startswith("GPT2") else "llama"
    )
    model_class = getattr(importlib.import_module(f"xf_load.models.{family}"), name)
    assert model_class.head_kind is kind
    assert architecture_head_kind(name) is kind


def test_head_kind_reads_well_and_round_trips_as_a_string():
    assert f"{HeadKind.CAUSAL_LM}" == "causal_lm" and HeadKind("masked_lm") is HeadKind.MASKED_LM
    assert {HeadKind(h) for f in FAMILIES.values() for h in f.heads} == set(HeadKind)


def test_unknown_architectures_and_plain_modules_have_no_kind():
    assert architecture_head_kind("GPT2ForSequenceClassification") is None  # gpt2 family, no such head
    assert architecture_head_kind("DistilBertForMaskedLM") is None
    assert head_kind_of(nn.Linear(2, 2)) is None

    class Declares(nn.Module):
        head_kind = "causal_lm"  # a plain module may opt in, with the enum or its value

    assert head_kind_of(Declares()) is HeadKind.CAUSAL_LM


def test_instances_report_the_kind_of_their_class():
    config = xf_load.AutoConfig.for_model(
        "bert",
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
    )
    model = xf_load.AutoModelForTokenClassification.from_config(config)
    assert head_kind_of(model) is HeadKind.TOKEN_CLASSIFICATION


def test_architecture_lookup_does_not_import_torch():
    from xf_core.testing import imported_modules

    modules = imported_modules(
        "import xf_load\nassert xf_load.architecture_head_kind('LlamaForCausalLM') == 'causal_lm'"
    )
    assert "xf_load.heads" in modules and "torch" not in modules


def test_all_tied_weights_keys_follows_the_config():
    from xf_load.models.gpt2 import GPT2Config, GPT2LMHeadModel

    tiny = {"n_embd": 16, "n_layer": 1, "n_head": 2, "vocab_size": 32, "n_positions": 16}
    tied = GPT2LMHeadModel(GPT2Config(**tiny))
    assert tied.all_tied_weights_keys == {"lm_head.weight": "transformer.wte.weight"}
    assert tied.lm_head.weight is tied.transformer.wte.weight
    untied = GPT2LMHeadModel(GPT2Config(**tiny, tie_word_embeddings=False))
    assert untied.all_tied_weights_keys == {}
    tied.all_tied_weights_keys.clear()  # a copy: the class mapping is not changed through it
    assert tied.all_tied_weights_keys == {"lm_head.weight": "transformer.wte.weight"}
