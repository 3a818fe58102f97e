"""report_to through accelerate's trackers: a GeneralTracker registered under a new name gets the run's
configuration, every log as train/ and eval/ scalars at its step, and is finished; "all" and a tracker that
is not installed."""

from __future__ import annotations

import importlib.util
from typing import ClassVar

import pytest
from accelerate import tracking

from xf_load import AutoModelForCausalLM, testing
from xf_train import Trainer, TrainingArguments
from xf_train.errors import TrainingArgumentsError


class RecordingTracker(tracking.GeneralTracker):
    """An offline tracker that keeps what it is given (runs: one dict per opened run)."""

    name = "xf_recording"
    requires_logging_directory = True
    runs: ClassVar[list[dict]] = []

    def __init__(self, run_name: str, logging_dir: str, **kwargs) -> None:
        super().__init__()
        self.run = {"run_name": run_name, "logging_dir": logging_dir, "logs": [], "finished": False}
        RecordingTracker.runs.append(self.run)

    @property
    def tracker(self):
        return self.run

    def store_init_configuration(self, values: dict) -> None:
        self.run["config"] = values

    def log(self, values: dict, step: int | None = None, **kwargs) -> None:
        self.run["logs"].append((step, values))

    def finish(self) -> None:
        self.run["finished"] = True


@pytest.fixture
def recording(monkeypatch):
    """RecordingTracker registered with accelerate for this test only."""
    monkeypatch.setitem(tracking.LOGGER_TYPE_TO_CLASS, RecordingTracker.name, RecordingTracker)
    monkeypatch.setattr(RecordingTracker, "runs", [])
    return RecordingTracker.runs


def test_a_registered_accelerate_tracker_gets_config_logs_and_finish(recording, tmp_path):
    checkpoint = testing.tiny_checkpoint_factory(tmp_path / "ckpt", vocab_size=96)("LlamaForCausalLM")
    rows = testing.token_dataset()
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        run_name="tracked",
        per_device_train_batch_size=4,
        max_steps=2,
        logging_steps=1,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="no",
        report_to=["xf_recording"],
        disable_tqdm=True,
    )
    trainer = Trainer(
        AutoModelForCausalLM.from_pretrained(checkpoint), args, train_dataset=rows, eval_dataset=rows[:8]
    )
    trainer.train()
    [run] = recording
    assert run["run_name"] == "tracked" and run["logging_dir"] == str(tmp_path / "out" / "runs")
    assert run["config"]["learning_rate"] == args.learning_rate and run["config"]["max_steps"] == 2
    assert run["config"]["report_to"] == "['xf_recording']"  # a list is stored as its text
    assert run["finished"]
    steps = [step for step, _ in run["logs"]]
    assert steps[:2] == [1, 2]
    losses = [values["train/loss"] for _, values in run["logs"] if "train/loss" in values]
    history = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    assert losses == pytest.approx(history) and len(losses) == 2
    evals = [values for _, values in run["logs"] if "eval/loss" in values]
    assert len(evals) == 1 and "train/eval_loss" not in evals[0]
    assert all(isinstance(v, (int, float)) for _, values in run["logs"] for v in values.values())


def test_report_to_names_accelerate_trackers_and_says_what_to_install(recording, monkeypatch):
    assert TrainingArguments(report_to="xf_recording").report_to == ["xf_recording"]
    with pytest.raises(TrainingArgumentsError, match="'xf_nothing' is not a tracker") as info:
        TrainingArguments(report_to=["xf_nothing"])
    assert info.value.key == "report_to"
    installed = {"tensorboard", "mlflow"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name in installed else None)
    assert TrainingArguments(report_to="all").report_to == ["tensorboard", "mlflow"]
    assert TrainingArguments(report_to=["mlflow"]).report_to == ["mlflow"]
    for name, package in [("wandb", "wandb"), ("comet_ml", "comet_ml"), ("dvclive", "dvclive")]:
        with pytest.raises(TrainingArgumentsError, match=f"pip install {package}"):
            TrainingArguments(report_to=["tensorboard", name])


def test_only_process_zero_opens_a_tracker(recording, tmp_path):
    from xf_train._callbacks import TrainerControl, TrainerState
    from xf_train._loggers import REPORTER_CALLBACKS

    callback = REPORTER_CALLBACKS["xf_recording"]()
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    callback.on_log(args, TrainerState(is_world_process_zero=False), TrainerControl(), logs={"loss": 1.0})
    assert recording == []
    callback.on_log(args, TrainerState(global_step=3), TrainerControl(), logs={"loss": 1.0, "epoch": 0.5})
    assert recording[0]["logs"] == [(3, {"train/loss": 1.0, "train/epoch": 0.5})]
    assert recording[0]["run_name"] == tmp_path.name
