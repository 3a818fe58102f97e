"""TrainingArguments: transformers' names and defaults, validation naming the field, ArgumentParser."""

from __future__ import annotations

import dataclasses

import pytest

from xf_core import ArgumentParser
from xf_train import TrainingArguments
from xf_train.errors import TrainingArgumentsError


def test_defaults_equal_transformers_for_every_shared_field():
    import transformers

    hf = transformers.TrainingArguments(output_dir="out")
    xf = TrainingArguments(output_dir="out")
    shared = [f.name for f in dataclasses.fields(xf) if hasattr(hf, f.name)]
    assert len(shared) >= 30
    skip = {
        "report_to",
        "disable_tqdm",
        "eval_steps",
        "optim",
        "debug",
    }  # normalised by transformers' __post_init__
    for name in shared:
        if name not in skip:
            hf_value = getattr(hf, name)
            hf_value = getattr(hf_value, "value", hf_value)  # transformers' str enums
            assert getattr(xf, name) == hf_value, name
    assert xf.optim == str(getattr(hf.optim, "value", hf.optim))
    assert TrainingArguments().output_dir == transformers.TrainingArguments().output_dir


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"per_device_train_batch_size": 0}, "per_device_train_batch_size"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"adam_beta2": 1.0}, "adam_beta2"),
        ({"warmup_steps": 2, "warmup_ratio": 0.1}, "warmup_ratio"),
        ({"logging_steps": 2.5}, "logging_steps"),
        ({"save_total_limit": 0}, "save_total_limit"),
        ({"fp16": True, "bf16": True}, "fp16"),
        ({"report_to": "wandb"}, "report_to"),
    ],
)
def test_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(TrainingArgumentsError, match=f"TrainingArguments.{field}=") as info:
        TrainingArguments(**kwargs)
    assert info.value.key == field
    assert isinstance(info.value, ValueError)


def test_unknown_field_is_an_error_with_a_suggestion():
    with pytest.raises(TypeError):
        TrainingArguments(learning_rat=1e-3)
    with pytest.raises(TrainingArgumentsError, match="did you mean 'learning_rate'"):
        TrainingArguments.from_dict({"learning_rat": 1e-3})
    assert TrainingArguments.from_dict({"learning_rate": 1e-3}).learning_rate == 1e-3


def test_warmup_steps_below_one_is_a_ratio_like_transformers():
    import transformers

    for warmup in (0, 3, 0.1, 0.25):
        hf = transformers.TrainingArguments(output_dir="o", warmup_steps=warmup)
        assert TrainingArguments(warmup_steps=warmup).get_warmup_steps(37) == hf.get_warmup_steps(37)
    assert TrainingArguments(warmup_ratio=0.1).get_warmup_steps(37) == 4


def test_argument_parser_fills_training_arguments(tmp_path):
    parser = ArgumentParser(TrainingArguments)
    (args,) = parser.parse_args_into_dataclasses(
        [
            "--output_dir",
            str(tmp_path),
            "--learning_rate",
            "1e-3",
            "--bf16",
            "--lr_scheduler_type",
            "cosine",
            "--label_names",
            "a",
            "b",
        ]
    )
    assert (args.learning_rate, args.bf16, args.lr_scheduler_type, args.label_names) == (
        1e-3,
        True,
        "cosine",
        ["a", "b"],
    )
    with pytest.raises(SystemExit):
        parser.parse_args_into_dataclasses(["--lr_scheduler_type", "exponential"])
    (from_dict,) = parser.parse_dict({"max_steps": 5, "eval_strategy": "steps"})
    assert from_dict.eval_steps == from_dict.logging_steps == 500


def test_only_output_dir_is_positional():
    # transformers' TrainingArguments("out") keeps working; every other field is keyword-only.
    assert TrainingArguments("out").output_dir == "out"
    with pytest.raises(TypeError, match="positional"):
        TrainingArguments("out", 16)  # type: ignore[misc]
    assert "_" not in {f.name for f in dataclasses.fields(TrainingArguments)}
    args, *_ = ArgumentParser(TrainingArguments).parse_args_into_dataclasses(
        ["--output_dir", "o", "--per_device_train_batch_size", "2"]
    )
    assert (args.output_dir, args.per_device_train_batch_size) == ("o", 2)
