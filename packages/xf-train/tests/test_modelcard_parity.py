"""The model card against transformers' ``TrainingSummary`` on the same summary: front matter (model-index
included) field by field, the card text, the log-history parsing and the hyperparameters taken from the
arguments. The one intended difference: the framework versions name xf-train where transformers names itself."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
import torch
import yaml

from xf_train import TrainingArguments
from xf_train._modelcard import TrainingSummary, framework_versions, hyperparameters_of, parse_log_history

LOG_HISTORY = [
    {"loss": 2.5, "grad_norm": 1.25, "learning_rate": 0.001, "epoch": 0.5, "step": 2},
    {"eval_loss": 2.123456789, "eval_accuracy": 0.5, "eval_exact_match": 0.25, "eval_runtime": 0.1,
     "eval_samples_per_second": 40.0, "eval_steps_per_second": 10.0, "epoch": 0.5, "step": 2},
    {"loss": 1.75, "grad_norm": 0.5, "learning_rate": 0.0005, "epoch": 1.0, "step": 4},
    {"eval_loss": 1.5, "eval_accuracy": 0.75, "eval_exact_match": 0.625, "eval_runtime": 0.1,
     "eval_samples_per_second": 40.0, "eval_steps_per_second": 10.0, "epoch": 1.0, "step": 4},
    {"train_runtime": 1.5, "train_samples_per_second": 10.0, "train_steps_per_second": 2.7,
     "total_flos": 123.0, "train_loss": 2.1, "epoch": 1.0, "step": 4},
]  # fmt: skip

SUMMARIES = {
    "bare": {"model_name": "run"},
    "full": {
        "model_name": "tiny-classifier",
        "language": ["en", "fr"],
        "license": "apache-2.0",
        "tags": ["text", "generated_from_trainer"],
        "finetuned_from": "org/base-model",
        "tasks": "text-classification",
        "dataset": "Tiny Reviews",
        "dataset_tags": "org/tiny-reviews",
        "dataset_args": "default",
        "dataset_metadata": [{"config": "default", "split": "validation"}],  # one per dataset tag
        "eval_results": {"Loss": 1.5, "Accuracy": 0.75, "Exact Match": 0.625, "F1": 0.123456789},
        "hyperparameters": {"learning_rate": 0.001, "train_batch_size": 4, "seed": 42},
    },
    "two datasets, two tasks, no metric": {
        "model_name": "multi",
        "language": "en",
        "tasks": ["text-generation", "fill-mask", "not-a-task"],
        "dataset": ["A", "B"],
        "dataset_tags": ["org/a", "org/b"],
        "eval_results": {"Loss": 3.0},
        "source": "script",
    },
    "metrics without a task": {
        "model_name": "m",
        "dataset": "D",
        "dataset_tags": "org/d",
        "eval_results": {"Rouge1": 0.4, "Wer": 0.1},
    },
}


@pytest.fixture(scope="module")
def hf_modelcard():
    from transformers import modelcard

    return modelcard


def _split_versions(card: str) -> tuple[str, list[str]]:
    body, _, versions = card.partition("### Framework versions\n\n")
    return body, versions.splitlines()


@pytest.mark.parametrize("name", list(SUMMARIES))
def test_card_equals_transformers_for_the_same_summary(hf_modelcard, name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # transformers would look the license up on the Hub
    fields = dict(SUMMARIES[name])
    if name == "full":
        fields["eval_lines"] = parse_log_history(LOG_HISTORY)[1]
    ours, theirs = TrainingSummary(**fields), hf_modelcard.TrainingSummary(**fields)

    assert ours.create_metadata() == theirs.create_metadata()  # model-index and every other field
    card, reference = ours.to_model_card(), theirs.to_model_card()
    front = yaml.safe_load(card.split("---\n")[1])
    assert front == ours.create_metadata()
    body, versions = _split_versions(card)
    reference_body, reference_versions = _split_versions(reference)
    assert body == reference_body
    assert reference_versions[0].startswith("- Transformers ")
    assert versions[0] == f"- xf-train {framework_versions()[0][1]}"
    assert versions[1:] == reference_versions[1:]  # Pytorch (for a trainer's card), Datasets, Tokenizers
    assert any(line.startswith("- Pytorch ") for line in versions) == (
        fields.get("source", "trainer") == "trainer"
    )


def test_full_summary_has_a_model_index_result_with_the_metrics():
    index = TrainingSummary(**SUMMARIES["full"]).create_metadata()["model-index"]
    (result,) = index[0]["results"]
    assert result["task"] == {"name": "Text Classification", "type": "text-classification"}
    assert result["dataset"] == {
        "name": "Tiny Reviews",
        "type": "org/tiny-reviews",
        "config": "default",
        "split": "validation",
        "args": "default",
    }
    assert [m["type"] for m in result["metrics"]] == ["accuracy", "f1"]


@pytest.mark.parametrize(
    "history",
    [LOG_HISTORY, LOG_HISTORY[:2], LOG_HISTORY[2:], [LOG_HISTORY[1], *LOG_HISTORY[2:]], []],
    ids=["full", "no-training", "no-eval", "eval-first", "empty"],
)
def test_log_history_parses_like_transformers(hf_modelcard, history):
    assert parse_log_history(history) == hf_modelcard.parse_log_history(history)


@pytest.mark.parametrize(
    "settings",
    [
        {"max_steps": 10},
        {"gradient_accumulation_steps": 4, "per_device_train_batch_size": 3, "warmup_steps": 3},
        {"lr_scheduler_type": "cosine", "optim": "adamw_torch", "per_device_eval_batch_size": 2, "seed": 7},
        {"learning_rate": 0.25, "num_train_epochs": 2.5, "adam_beta2": 0.95, "adam_epsilon": 1e-6},
    ],
)
def test_hyperparameters_match_transformers(hf_modelcard, tmp_path, settings):
    import transformers

    reference = hf_modelcard.extract_hyperparameters_from_trainer(
        SimpleNamespace(args=transformers.TrainingArguments(output_dir=str(tmp_path), **settings))
    )
    # transformers formats its optimizer enum by name ("OptimizerNames.ADAMW_TORCH"); xf writes the value
    reference["optimizer"] = re.sub(
        r"OptimizerNames\.(\w+)", lambda m: m.group(1).lower(), reference["optimizer"]
    )
    assert hyperparameters_of(TrainingArguments(output_dir=str(tmp_path), **settings)) == reference


def test_framework_versions_name_the_installed_libraries():
    import tokenizers

    versions = dict(framework_versions())
    assert versions["Pytorch"] == torch.__version__ and versions["Tokenizers"] == tokenizers.__version__
    assert "Pytorch" not in dict(framework_versions(source="script"))


@pytest.mark.parametrize(
    ("kind", "task"),
    [("causal_lm", "text-generation"), ("seq2seq_lm", "text2text-generation"), ("base", None), (None, None)],
)
def test_the_task_tag_comes_from_xf_loads_head_kind_table(kind, task, tmp_path):
    model = SimpleNamespace(config=SimpleNamespace(name_or_path=""), head_kind=kind)
    trainer = SimpleNamespace(
        model=model,
        args=TrainingArguments(output_dir=str(tmp_path / "run")),
        state=SimpleNamespace(log_history=[]),
    )
    summary = TrainingSummary.from_trainer(trainer)  # type: ignore[arg-type]
    assert summary.tasks == task
