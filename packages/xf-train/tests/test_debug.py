"""DebugUnderflowOverflow names the first module that makes inf/nan."""

from __future__ import annotations

import pytest
import torch

from xf_load import AutoModelForCausalLM
from xf_train import DebugUnderflowOverflow
from xf_train.errors import OverflowDetectedError


def test_names_the_first_module_with_inf(tiny_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint("LlamaForCausalLM"))
    ids = torch.randint(1, 96, (2, 8))
    with DebugUnderflowOverflow(model, max_frames_to_save=5) as debug:
        model(ids)  # healthy batch: no error
        model(ids)
        assert debug.batch_number == 2
        with torch.no_grad():
            model.model.layers[1].mlp.up_proj.weight[0, 0] = float("inf")
        with pytest.raises(OverflowDetectedError) as info:
            model(ids)
    error = info.value
    assert error.module == "model.layers.1.mlp.up_proj" and error.variable == "weight"
    assert error.batch_number == 2 and isinstance(error, ValueError)
    assert error.report.count("\n ") <= 5 * 10 and "<-- inf/nan" in error.report
    assert "model.layers.1.mlp.up_proj" in str(error)
    model(ids)  # hooks removed on exit: no error any more, even with the inf weight


def test_abort_after_batch_num(tiny_checkpoint):
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint("LlamaForCausalLM"))
    debug = DebugUnderflowOverflow(model, abort_after_batch_num=1)
    model(torch.ones(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="abort_after_batch_num=1"):
        model(torch.ones(1, 4, dtype=torch.long))
    debug.remove()


def test_trainer_debug_option_stops_at_the_inf(tiny_checkpoint, token_dataset, tmp_path):
    from xf_train import Trainer, TrainingArguments

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint("LlamaForCausalLM"))
    with torch.no_grad():
        model.model.norm.weight[3] = float("nan")
    args = TrainingArguments(
        output_dir=str(tmp_path), debug="underflow_overflow", max_steps=1, save_strategy="no"
    )
    with pytest.raises(OverflowDetectedError, match=r"weight of model\.norm"):
        Trainer(model, args, train_dataset=token_dataset).train()
