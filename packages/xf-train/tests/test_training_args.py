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


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gradient_accumulation_steps": 0}, "gradient_accumulation_steps"),
        ({"per_device_eval_batch_size": 0}, "per_device_eval_batch_size"),
        ({"dataloader_num_workers": -1}, "dataloader_num_workers"),
        ({"dataloader_prefetch_factor": 2}, "dataloader_prefetch_factor"),
        ({"eval_accumulation_steps": 0}, "eval_accumulation_steps"),
        ({"label_smoothing_factor": 1.0}, "label_smoothing_factor"),
        ({"include_num_input_tokens_seen": "some"}, "include_num_input_tokens_seen"),
        ({"push_to_hub": True}, "push_to_hub"),
        ({"report_to": ["tensorboard", "wandb"]}, "report_to"),
        ({"load_best_model_at_end": True}, "load_best_model_at_end"),
        ({"load_best_model_at_end": True, "eval_strategy": "epoch"}, "load_best_model_at_end"),
        (
            {"load_best_model_at_end": True, "eval_strategy": "steps", "eval_steps": 3, "save_steps": 4},
            "save_steps",
        ),
        ({"eval_steps": 0, "eval_strategy": "steps"}, "eval_steps"),
        ({"save_steps": 0}, "save_steps"),
        ({"max_grad_norm": -1.0}, "max_grad_norm"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"debug": "everything"}, "debug"),
    ],
)
def test_more_invalid_values_name_the_field(kwargs, field):
    with pytest.raises(TrainingArgumentsError) as info:
        TrainingArguments(**kwargs)
    assert info.value.key == field
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("deepspeed", "xf-parallel"),
        ("auto_find_batch_size", "per_device_train_batch_size"),
        ("hub_model_id", "upload_folder"),
        ("logging_dir", "logs.jsonl"),
        ("group_by_length", "bucket"),
    ],
)
def test_an_unsupported_transformers_field_names_itself_and_the_alternative(name, hint):
    from xf_train.errors import UnsupportedArgumentError

    with pytest.raises(
        UnsupportedArgumentError, match=f"TrainingArguments.{name} is not supported.*{hint}"
    ) as info:
        TrainingArguments(**{name: True})
    assert info.value.key == name and isinstance(info.value, TypeError)


@pytest.mark.parametrize("value", ["none", [], None, "None", ["none"]])
def test_report_to_off_forms_mean_no_logger(value):
    assert TrainingArguments(report_to=value).report_to == []


def test_report_to_all_is_the_installed_loggers_and_a_missing_one_is_named(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a)
    )
    assert TrainingArguments(report_to="all").report_to == []
    with pytest.raises(TrainingArgumentsError, match="pip install tensorboard"):
        TrainingArguments(report_to="tensorboard")
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: object() if name == "tensorboard" else real(name, *a)
    )
    assert TrainingArguments(report_to="all").report_to == ["tensorboard"]
    assert TrainingArguments(report_to="tensorboard").report_to == ["tensorboard"]


def test_best_model_defaults_follow_transformers():
    import transformers

    for metric in (None, "accuracy", "eval_loss"):
        kwargs = {"load_best_model_at_end": True, "eval_strategy": "steps", "save_steps": 10, "eval_steps": 5}
        kwargs["metric_for_best_model"] = metric
        hf = transformers.TrainingArguments(output_dir="o", **kwargs)
        xf = TrainingArguments(**kwargs)
        assert (xf.metric_for_best_model, xf.greater_is_better) == (
            hf.metric_for_best_model,
            hf.greater_is_better,
        )


def test_new_fields_default_like_transformers():
    import transformers

    hf = transformers.TrainingArguments(output_dir="out")
    xf = TrainingArguments(output_dir="out")
    for name in (
        "dataloader_num_workers",
        "dataloader_pin_memory",
        "dataloader_persistent_workers",
        "dataloader_prefetch_factor",
        "gradient_checkpointing",
        "gradient_checkpointing_kwargs",
        "torch_compile",
        "label_smoothing_factor",
        "load_best_model_at_end",
        "metric_for_best_model",
        "greater_is_better",
        "eval_accumulation_steps",
        "include_num_input_tokens_seen",
        "push_to_hub",
        "ddp_timeout",
        "ddp_backend",
        "local_rank",
        "eval_delay",
        "ignore_data_skip",
        "logging_nan_inf_filter",
        "report_to",
    ):
        assert getattr(xf, name) == getattr(hf, name), name
