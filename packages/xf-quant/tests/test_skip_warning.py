"""A skip-list entry that matches no module keeps nothing in full precision: the quantizer says so by name."""

import logging

from torch import nn

from xf_load.auto import AutoModelForCausalLM
from xf_quant import BitsAndBytesConfig, is_bnb_module
from xf_quant._skip import unmatched_skip_modules


def test_unmatched_entries_are_found():
    model = nn.ModuleDict(
        {"layers": nn.ModuleList([nn.ModuleDict({"mlp": nn.Linear(2, 2)})]), "lm_head": nn.Linear(2, 2)}
    )
    names = ["lm_head", "layers.*.mlp", "lm_hed", "layers.7", "mlp.gate", "lm_head"]
    assert unmatched_skip_modules(model, names) == ["lm_hed", "layers.7", "mlp.gate"]


def test_a_skip_entry_that_matches_nothing_is_a_warning_naming_it(float_checkpoint, caplog):
    config = BitsAndBytesConfig(load_in_4bit=True, llm_int8_skip_modules=["lm_hed", "mlp"])
    with caplog.at_level(logging.WARNING):
        model = AutoModelForCausalLM.from_pretrained(float_checkpoint("llama"), quantization_config=config)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'lm_hed' matches no module" in w and "LlamaForCausalLM" in w for w in warnings), warnings
    assert not any("entry 'mlp'" in w for w in warnings)
    assert any(is_bnb_module(m) for m in model.modules())  # the load itself goes on
    assert not is_bnb_module(model.model.layers[0].mlp.up_proj)  # the entry that matched was applied
