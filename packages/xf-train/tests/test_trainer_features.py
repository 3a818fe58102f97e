"""What a transformers Trainer script expects: callbacks in transformers' order, early stopping, predict(),
best-model tracking, streams, the DataLoader options, the NaN/inf guard, logs.jsonl and the curves plot, and
loss parity with transformers' Trainer under bf16, label smoothing and gradient checkpointing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from xf_load import AutoModelForCausalLM, testing
from xf_train import (
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)
from xf_train.errors import NonFiniteError, TrainingArgumentsError

EVENTS = [
    "on_init_end",
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_step_begin",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_substep_end",
    "on_step_end",
    "on_evaluate",
    "on_predict",
    "on_save",
    "on_log",
    "on_prediction_step",
]
QUIET = {"report_to": "none", "disable_tqdm": True, "optim": "adamw_torch", "seed": 7}


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return testing.tiny_checkpoint_factory(tmp_path_factory.mktemp("ckpt"), vocab_size=96)("LlamaForCausalLM")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return testing.token_dataset()


def _model(path: Path):
    return AutoModelForCausalLM.from_pretrained(path)


def _recorder(base: type, log: list[str]):
    """A callback of class ``base`` that appends the name of every event it gets to ``log``."""

    def method(event):
        return lambda self, args, state, control, **kwargs: log.append(event)

    return type("Recorder", (base,), {event: method(event) for event in EVENTS})()


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_callback_events_fire_in_transformers_order(llama, rows, tmp_path):
    import transformers

    common = {
        **QUIET,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 4,
        "gradient_accumulation_steps": 2,
        "max_steps": 4,
        "logging_steps": 1,
        "eval_strategy": "steps",
        "eval_steps": 2,
        "save_steps": 3,
        "learning_rate": 1e-3,
    }
    hf_events: list[str] = []
    transformers.Trainer(
        model=transformers.LlamaForCausalLM.from_pretrained(llama),
        args=transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), use_cpu=True, **common),
        train_dataset=rows,
        eval_dataset=rows[:6],
        callbacks=[_recorder(transformers.TrainerCallback, hf_events)],
    ).train()
    xf_events: list[str] = []
    trainer = Trainer(
        _model(llama),
        TrainingArguments(output_dir=str(tmp_path / "xf"), **common),
        train_dataset=rows,
        eval_dataset=rows[:6],
        callbacks=[_recorder(TrainerCallback, xf_events)],
    )
    trainer.train()
    assert xf_events == hf_events
    assert {"on_substep_end", "on_save", "on_evaluate", "on_prediction_step"} <= set(xf_events)

    # add/remove: a removed callback hears nothing more; classes are accepted like instances
    trainer.remove_callback(trainer.callback_handler.callbacks[-1])
    before = len(xf_events)
    trainer.evaluate()
    assert len(xf_events) == before
    trainer.add_callback(EarlyStoppingCallback)
    assert isinstance(trainer.pop_callback(EarlyStoppingCallback), EarlyStoppingCallback)


def test_early_stopping_stops_after_patience_evaluations(llama, rows, tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=10,
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="no",
        metric_for_best_model="score",
        **QUIET,
    )
    trainer = Trainer(
        _model(llama),
        args,
        train_dataset=rows,
        eval_dataset=rows[:2],
        compute_metrics=lambda p: {"score": 1.0},  # never improves after the first evaluation
        callbacks=[EarlyStoppingCallback(early_stopping_patience=2)],
    )
    state = trainer.train()
    assert state.global_step == 3  # best at 1, no better at 2 and 3
    assert state.best_metric == 1.0 and state.best_global_step == 1
    with pytest.raises(TrainingArgumentsError, match="metric_for_best_model"):
        no_metric = TrainingArguments(
            output_dir=str(tmp_path / "b"), max_steps=2, eval_strategy="steps", **QUIET
        )
        Trainer(
            _model(llama),
            no_metric,
            train_dataset=rows,
            eval_dataset=rows,
            callbacks=[EarlyStoppingCallback()],
        ).train()


def test_best_checkpoint_survives_rotation_and_is_loaded_at_the_end(llama, rows, tmp_path):
    scores = iter([1.0, 5.0, 2.0, 3.0])
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        max_steps=4,
        eval_strategy="steps",
        eval_steps=1,
        save_steps=1,
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="score",
        **QUIET,
    )
    assert args.greater_is_better is True
    seen: list[list[str]] = []

    def after_save(event, trainer, payload):
        if event == "save":
            seen.append(sorted(p.name for p in tmp_path.glob("checkpoint-*")))

    model = _model(llama)
    trainer = Trainer(
        model,
        args,
        train_dataset=rows,
        eval_dataset=rows[:2],
        compute_metrics=lambda p: {"score": next(scores)},
        callbacks=[after_save],
    )
    state = trainer.train()
    # the newest and the best are never rotated away, even with save_total_limit=1
    assert seen == [
        ["checkpoint-1"],
        ["checkpoint-2"],
        ["checkpoint-2", "checkpoint-3"],
        ["checkpoint-2", "checkpoint-4"],
    ]
    assert (state.best_metric, state.best_global_step) == (5.0, 2)
    assert Path(state.best_model_checkpoint).name == "checkpoint-2"
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2"]  # as transformers
    best = AutoModelForCausalLM.from_pretrained(tmp_path / "checkpoint-2")
    for name, value in best.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=0, atol=0)


def test_predict_gathers_every_row_and_bounds_device_memory(llama, rows, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=4, **QUIET)
    model = _model(llama)
    out = Trainer(model, args).predict(rows)
    assert out.predictions.shape == (11, 12, 96) and out.label_ids.shape == (11, 12)
    evaluated = Trainer(model, args, eval_dataset=rows).evaluate()
    assert out.metrics["test_loss"] == pytest.approx(evaluated["eval_loss"], abs=1e-6)
    with torch.no_grad():
        row = {k: torch.tensor([rows[5][k]]) for k in ("input_ids", "attention_mask")}
        logits = model(**row).logits[0]
    torch.testing.assert_close(out.predictions[5], logits, rtol=1e-5, atol=1e-5)

    seen = []
    chunked = TrainingArguments(
        output_dir=str(tmp_path), per_device_eval_batch_size=2, eval_accumulation_steps=2, **QUIET
    )
    trainer = Trainer(
        model,
        chunked,
        compute_metrics=lambda p: seen.append(p) or {"n": float(len(p.predictions))},
        preprocess_logits_for_metrics=lambda logits, labels: logits.argmax(-1),
    )
    small = trainer.predict(rows)
    assert small.predictions.shape == (11, 12) and small.metrics["test_n"] == 11.0
    torch.testing.assert_close(small.predictions, out.predictions.argmax(-1))
    assert seen[0].label_ids.shape == (11, 12)


def test_a_stream_trains_to_max_steps_like_the_same_rows_in_order(llama, rows, tmp_path):
    common = {**QUIET, "per_device_train_batch_size": 2, "logging_steps": 1, "save_strategy": "no"}

    class Rows(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(rows)

    listed = Trainer(
        _model(llama),
        TrainingArguments(
            output_dir=str(tmp_path / "a"), max_steps=8, train_sampling_strategy="sequential", **common
        ),
        train_dataset=rows,
    ).train()
    streamed = Trainer(
        _model(llama),
        TrainingArguments(output_dir=str(tmp_path / "b"), max_steps=8, **common),
        train_dataset=Rows(),
    ).train()
    losses = [[e["loss"] for e in s.log_history if "loss" in e] for s in (listed, streamed)]
    assert len(losses[0]) == 8
    assert losses[1] == pytest.approx(losses[0], abs=1e-6)  # the stream restarts after its 6 batches
    with pytest.raises(TrainingArgumentsError, match="max_steps > 0") as info:
        Trainer(
            _model(llama), TrainingArguments(output_dir=str(tmp_path / "c"), **common), train_dataset=Rows()
        ).train()
    assert info.value.key == "max_steps"


def test_workers_drop_last_and_column_removal(llama, rows, tmp_path):
    common = {**QUIET, "per_device_train_batch_size": 2, "logging_steps": 1, "save_strategy": "no"}
    common |= {"num_train_epochs": 1, "dataloader_drop_last": True}
    texts = [{**row, "text": f"row {i}"} for i, row in enumerate(rows)]  # not a forward argument
    keys: set[str] = set()

    def collate(features):
        keys.update(*features)
        return default_data_collator(features)

    in_process = Trainer(
        _model(llama),
        TrainingArguments(output_dir=str(tmp_path / "a"), **common),
        train_dataset=texts,
        data_collator=collate,
    ).train()
    assert keys == {"input_ids", "attention_mask", "labels"}  # "text" removed by the forward's signature
    workers = Trainer(
        _model(llama),
        TrainingArguments(output_dir=str(tmp_path / "b"), dataloader_num_workers=2, **common),
        train_dataset=texts,
    ).train()
    losses = [[e["loss"] for e in s.log_history if "loss" in e] for s in (in_process, workers)]
    assert len(losses[0]) == 5  # 11 rows, batch 2, the short last batch dropped
    assert losses[1] == pytest.approx(losses[0], abs=1e-6)
    args = TrainingArguments(
        output_dir=str(tmp_path / "c"), remove_unused_columns=False, max_steps=1, **common
    )
    Trainer(_model(llama), args, train_dataset=texts, data_collator=collate).train()
    assert "text" in keys


def test_nan_weights_stop_at_the_step_naming_the_parameter(llama, rows, tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=6,
        save_steps=1,
        save_total_limit=2,
        **QUIET,
    )

    def poison_after_step_2(event, trainer, payload):
        if event == "step_end" and trainer.state.global_step == 2:
            with torch.no_grad():
                trainer.model.model.layers[1].mlp.up_proj.weight[0, 0] = float("nan")

    trainer = Trainer(_model(llama), args, train_dataset=rows, callbacks=[poison_after_step_2])
    before = None

    def remember(event, trainer, payload):
        nonlocal before
        if event == "step_end" and trainer.state.global_step == 2:
            before = _digest(tmp_path / "checkpoint-2")

    trainer.add_callback(remember)
    with pytest.raises(NonFiniteError, match="step 3: parameter model.layers.1.mlp.up_proj.weight") as info:
        trainer.train()
    assert (info.value.step, info.value.name) == (3, "model.layers.1.mlp.up_proj.weight")
    assert "checkpoint-2" in str(info.value) and "stop_on_nan_inf=False" in str(info.value)
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert _digest(tmp_path / "checkpoint-2") == before

    # opted out, the run goes on (transformers' behaviour) and logs the NaN loss
    args.stop_on_nan_inf, args.output_dir = False, str(tmp_path / "on")
    args.logging_steps = 1
    state = Trainer(_model(llama), args, train_dataset=rows, callbacks=[poison_after_step_2]).train()
    assert state.global_step == 6
    assert torch.isnan(torch.tensor([e["loss"] for e in state.log_history if "loss" in e][-1]))


def test_a_nan_gradient_is_named_when_the_weights_are_finite(llama, rows, tmp_path):
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=2, **QUIET)
    model = _model(llama)
    model.model.layers[0].mlp.down_proj.weight.register_hook(lambda g: g * float("inf"))
    with pytest.raises(NonFiniteError, match="step 1: the gradient of model.layers.0.mlp.down_proj.weight"):
        Trainer(model, args, train_dataset=rows).train()
    assert torch.isfinite(model.model.layers[0].mlp.down_proj.weight).all()  # the step was not applied


def test_logs_jsonl_and_training_curves(llama, rows, tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        max_steps=4,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="no",
        include_num_input_tokens_seen="all",
        report_to=[],
        **{k: v for k, v in QUIET.items() if k != "report_to"},
    )
    state = Trainer(_model(llama), args, train_dataset=rows, eval_dataset=rows[:4]).train()
    lines = [json.loads(line) for line in (tmp_path / "logs.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(state.log_history))
    train_logs = [e for e in lines if "loss" in e]
    assert len(train_logs) == 4 and sum("eval_loss" in e for e in lines) == 2
    for entry in train_logs:
        assert entry["tokens_per_second"] > 0 and entry["grad_norm"] > 0 and "learning_rate" in entry
    assert [e["num_input_tokens_seen"] for e in train_logs] == [24, 48, 72, 96]
    assert (tmp_path / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "extra",
    [
        {"bf16": True},
        {"label_smoothing_factor": 0.1, "gradient_accumulation_steps": 1},
        {"gradient_checkpointing": True},
    ],
    ids=["bf16", "label_smoothing", "gradient_checkpointing"],
)
def test_loss_curve_equals_transformers_with(llama, rows, tmp_path, extra):
    import transformers

    common = {
        **QUIET,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,
        "learning_rate": 3e-3,
        "max_steps": 4,
        "logging_steps": 1,
        "save_strategy": "no",
        "train_sampling_strategy": "sequential",
        **extra,
    }
    hf = transformers.Trainer(
        model=transformers.LlamaForCausalLM.from_pretrained(llama),
        args=transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), use_cpu=True, **common),
        train_dataset=rows,
    )
    hf.train()
    model = _model(llama)
    state = Trainer(
        model, TrainingArguments(output_dir=str(tmp_path / "xf"), **common), train_dataset=rows
    ).train()
    if extra.get("gradient_checkpointing"):
        assert model.is_gradient_checkpointing
    tolerance = (
        2e-2 if extra.get("bf16") else 1e-5
    )  # two implementations rounding to bf16 in different places
    for key in ("loss", "grad_norm", "learning_rate"):
        xf_values = [e[key] for e in state.log_history if "loss" in e]
        hf_values = [e[key] for e in hf.state.log_history if "loss" in e]
        assert xf_values == pytest.approx(hf_values, abs=tolerance, rel=tolerance), key


def test_fp16_trains_with_a_gradient_scaler_close_to_fp32(llama, rows, tmp_path):
    common = {**QUIET, "per_device_train_batch_size": 4, "max_steps": 3, "logging_steps": 1, "save_steps": 3}
    full = Trainer(
        _model(llama), TrainingArguments(output_dir=str(tmp_path / "a"), **common), train_dataset=rows
    )
    half = Trainer(
        _model(llama),
        TrainingArguments(output_dir=str(tmp_path / "b"), fp16=True, **common),
        train_dataset=rows,
    )
    losses = [[e["loss"] for e in t.train().log_history if "loss" in e] for t in (full, half)]
    assert losses[1] == pytest.approx(losses[0], abs=2e-2)
    assert half.scaler is not None and (tmp_path / "b" / "checkpoint-3" / "scaler.json").is_file()


@pytest.mark.parametrize("optim", ["sgd", "adafactor", "adamw_torch_fused"])
def test_optim_names_build_their_optimizer(llama, rows, tmp_path, optim):
    args = TrainingArguments(
        output_dir=str(tmp_path),
        optim=optim,
        max_steps=1,
        save_strategy="no",
        **{k: v for k, v in QUIET.items() if k != "optim"},
    )
    trainer = Trainer(_model(llama), args, train_dataset=rows)
    trainer.train()
    expected = {
        "sgd": torch.optim.SGD,
        "adafactor": torch.optim.Adafactor,
        "adamw_torch_fused": torch.optim.AdamW,
    }
    assert type(trainer.optimizer) is expected[optim]


def test_trainer_level_errors_name_the_field(llama, rows, tmp_path):
    def fails(key: str, match: str, *, model=None, train=rows, eval_dataset=None, **kwargs):
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=1, **QUIET, **kwargs)
        trainer = Trainer(model or _model(llama), args, train_dataset=train, eval_dataset=eval_dataset)
        with pytest.raises(TrainingArgumentsError, match=match) as info:
            trainer.train()
        assert info.value.key == key

    fails("fsdp", "torchrun", fsdp="full_shard")  # FSDP shards over processes: one is refused
    fails(
        "gradient_checkpointing",
        "gradient_checkpointing_enable",
        model=torch.nn.Linear(2, 2),
        gradient_checkpointing=True,
    )
    fails(
        "metric_for_best_model",
        "gave no 'eval_bleu'",
        eval_dataset=rows[:2],
        eval_strategy="steps",
        eval_steps=1,
        metric_for_best_model="bleu",
    )
    fails("train_dataset", "needs a train_dataset", train=None)


def test_report_to_tensorboard_writes_event_files(llama, rows, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=2,
        logging_steps=1,
        save_strategy="no",
        **{**QUIET, "report_to": "tensorboard"},
    )
    Trainer(_model(llama), args, train_dataset=rows).train()
    events = EventAccumulator(str(tmp_path / "runs"))
    events.Reload()
    assert [s.step for s in events.Scalars("train/loss")] == [1, 2]
    assert {"train/grad_norm", "train/learning_rate", "train/tokens_per_second"} <= set(
        events.Tags()["scalars"]
    )
