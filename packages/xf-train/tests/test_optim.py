"""Weight-decay groups and learning-rate schedules against transformers."""

from __future__ import annotations

import pytest
import torch

from xf_load import AutoModelForCausalLM
from xf_train import create_optimizer, get_decay_parameter_names, get_scheduler
from xf_train.errors import TrainingArgumentsError


@pytest.mark.parametrize("model_class", ["LlamaForCausalLM", "GPT2LMHeadModel"])
def test_decay_groups_equal_transformers(tiny_checkpoint, tmp_path, model_class):
    import transformers

    path = tiny_checkpoint(model_class)
    hf_model = getattr(transformers, model_class).from_pretrained(path)
    trainer = transformers.Trainer(
        model=hf_model, args=transformers.TrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    decay = get_decay_parameter_names(model)
    assert set(decay) == set(trainer.get_decay_parameter_names(hf_model)) & {
        n for n, _ in model.named_parameters()
    }
    assert not any("norm" in n or "ln_" in n or n.endswith("bias") for n in decay)
    optimizer = create_optimizer(model, lr=1e-3, weight_decay=0.1)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))


@pytest.mark.parametrize("name", ["linear", "cosine", "constant", "constant_with_warmup", "polynomial"])
@pytest.mark.parametrize("warmup", [0, 4])
def test_lr_curves_equal_transformers(name, warmup):
    import transformers

    def curve(make):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
        sched = make(opt)
        lrs = []
        for _ in range(25):  # a few steps past the end: schedules must stay sane there
            lrs.append(sched.get_last_lr()[0])
            opt.step()
            sched.step()
        return lrs

    kwargs = {"lr_end": 1e-4, "power": 2.0} if name == "polynomial" else None
    ours = curve(
        lambda o: get_scheduler(
            name, o, num_warmup_steps=warmup, num_training_steps=20, scheduler_specific_kwargs=kwargs
        )
    )
    theirs = curve(
        lambda o: transformers.get_scheduler(
            name, o, num_warmup_steps=warmup, num_training_steps=20, scheduler_specific_kwargs=kwargs
        )
    )
    assert ours == pytest.approx(theirs, abs=1e-12)
    if warmup and name != "constant":  # constant ignores warmup, as in transformers
        assert ours[0] == 0.0 and ours[warmup] == pytest.approx(0.01)


def test_scheduler_state_round_trips():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    sched = get_scheduler("cosine", opt, num_warmup_steps=2, num_training_steps=10)
    for _ in range(5):
        opt.step()
        sched.step()
    fresh = get_scheduler("cosine", opt, num_warmup_steps=2, num_training_steps=10)
    fresh.load_state_dict(sched.state_dict())
    assert fresh.get_last_lr() == sched.get_last_lr()
    assert fresh.last_epoch == 5


def test_unknown_schedule_and_missing_steps_are_named():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    with pytest.raises(TrainingArgumentsError, match="'exponential' is not one of linear, cosine"):
        get_scheduler("exponential", opt)
    with pytest.raises(TrainingArgumentsError, match="needs num_training_steps"):
        get_scheduler("linear", opt)
    assert get_scheduler("constant", opt).get_last_lr() == [0.01]
