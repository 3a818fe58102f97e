"""The Trainer against transformers' Trainer: same loss curve, grad norms, lrs and final weights; resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xf_load import AutoModelForCausalLM
from xf_train import Trainer, TrainingArguments

COMMON = {
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 2,
    "learning_rate": 3e-3,
    "weight_decay": 0.1,
    "warmup_steps": 2,
    "max_grad_norm": 0.5,
    "num_train_epochs": 2,
    "lr_scheduler_type": "cosine",
    "logging_steps": 1,
    "save_strategy": "no",
    "train_sampling_strategy": "sequential",
    "optim": "adamw_torch",
    "report_to": "none",
    "disable_tqdm": True,
    "seed": 7,
}


def _hf_run(path: Path, data: list[dict], out: Path, model_class: str):
    import transformers

    model = getattr(transformers, model_class).from_pretrained(path)
    args = transformers.TrainingArguments(output_dir=str(out), use_cpu=True, **COMMON)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data)
    trainer.train()
    return trainer.state.log_history, model.state_dict()


@pytest.mark.parametrize("model_class", ["LlamaForCausalLM", "GPT2LMHeadModel"])
def test_loss_curve_equals_transformers(tiny_checkpoint, token_dataset, tmp_path, model_class):
    path = tiny_checkpoint(model_class)
    if model_class == "GPT2LMHeadModel":
        # transformers counts num_items_in_batch over unshifted labels for GPT-2 (its loss_type is None), one
        # token per row too many; xf counts the shifted targets for every causal LM. With the first label of
        # each row ignored both counts agree, so the curves must match.
        token_dataset = [{**row, "labels": [-100, *row["labels"][1:]]} for row in token_dataset]
    hf_logs, hf_state = _hf_run(path, token_dataset, tmp_path / "hf_out", model_class)

    model = AutoModelForCausalLM.from_pretrained(path)
    args = TrainingArguments(output_dir=str(tmp_path / "xf_out"), **COMMON)
    state = Trainer(model, args, train_dataset=token_dataset).train()

    hf_steps = [e for e in hf_logs if "loss" in e]
    xf_steps = [e for e in state.log_history if "loss" in e]
    # 11 rows / batch 2 = 6 batches -> 3 windows of 2 per epoch, 2 epochs
    assert len(xf_steps) == len(hf_steps) == 6
    for key in ("loss", "grad_norm", "learning_rate", "epoch"):
        torch.testing.assert_close(
            torch.tensor([e[key] for e in xf_steps], dtype=torch.float64),
            torch.tensor([e[key] for e in hf_steps], dtype=torch.float64),
            rtol=0,
            atol=1e-5,
            msg=lambda m, key=key: f"{key}: {m}",
        )
    assert xf_steps[0]["loss"] > xf_steps[-1]["loss"]  # it learns
    assert state.log_history[-1]["train_loss"] == pytest.approx(hf_logs[-1]["train_loss"], abs=1e-5)
    xf_state = model.state_dict()
    for name, value in hf_state.items():
        if name in xf_state:
            torch.testing.assert_close(
                xf_state[name], value, rtol=0, atol=1e-5, msg=lambda m, n=name: f"{n}: {m}"
            )


def test_resume_gives_same_weights_as_uninterrupted_run(tiny_checkpoint, token_dataset, tmp_path):
    path = tiny_checkpoint("LlamaForCausalLM")
    common = {**COMMON, "train_sampling_strategy": "random", "save_strategy": "steps", "save_steps": 2}

    full = AutoModelForCausalLM.from_pretrained(path)
    full_state = Trainer(
        full, TrainingArguments(output_dir=str(tmp_path / "a"), **common), train_dataset=token_dataset
    ).train()

    # the same run "crashes" right after step 4 (a callback raises), then a fresh start resumes from checkpoint-4
    class Crash(Exception):
        pass

    def crash_after_step_4(event, trainer, payload):
        if event == "step_end" and trainer.state.global_step == 4:
            raise Crash

    first = AutoModelForCausalLM.from_pretrained(path)
    args = TrainingArguments(output_dir=str(tmp_path / "b"), **common)
    with pytest.raises(Crash):
        Trainer(first, args, train_dataset=token_dataset, callbacks=[crash_after_step_4]).train()
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "checkpoint-2",
        "checkpoint-4",
        "logs.jsonl",
    ]
    resumed = AutoModelForCausalLM.from_pretrained(path)
    state = Trainer(resumed, args, train_dataset=token_dataset).train(resume_from_checkpoint=True)

    assert state.global_step == full_state.global_step == 6
    full_losses = [e["loss"] for e in full_state.log_history if "loss" in e]
    resumed_losses = [e["loss"] for e in state.log_history if "loss" in e]
    assert resumed_losses == pytest.approx(full_losses, abs=1e-6)
    for name, value in full.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=1e-6)


def test_evaluate_equals_transformers_and_passes_metrics(tiny_checkpoint, token_dataset, tmp_path):
    import transformers

    path = tiny_checkpoint("LlamaForCausalLM")
    args = {"per_device_eval_batch_size": 4, "report_to": "none", "disable_tqdm": True}
    hf = transformers.Trainer(
        model=transformers.LlamaForCausalLM.from_pretrained(path),
        args=transformers.TrainingArguments(output_dir=str(tmp_path / "hf"), use_cpu=True, **args),
        eval_dataset=token_dataset,
    ).evaluate()

    seen = []

    def metrics(prediction):
        seen.append(prediction)
        targets = prediction.label_ids[:, 1:]
        correct = (prediction.predictions[:, :-1].argmax(-1) == targets)[targets != -100]
        return {"accuracy": correct.float().mean().item()}

    trainer = Trainer(
        AutoModelForCausalLM.from_pretrained(path),
        TrainingArguments(output_dir=str(tmp_path / "xf"), **args),
        eval_dataset=token_dataset,
        compute_metrics=metrics,
    )
    out = trainer.evaluate()
    assert out["eval_loss"] == pytest.approx(hf["eval_loss"], abs=1e-5)
    assert 0.0 <= out["eval_accuracy"] <= 1.0
    assert seen[0].predictions.shape == (11, 12, 96) and seen[0].label_ids.shape == (11, 12)
    assert trainer.state.log_history[-1]["eval_loss"] == out["eval_loss"]


def test_checkpoints_are_complete_rotated_and_loadable(tiny_checkpoint, token_dataset, tmp_path):
    import json

    import transformers

    path = tiny_checkpoint("LlamaForCausalLM")
    events = []
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"),
        **{
            **COMMON,
            "save_strategy": "steps",
            "save_steps": 1,
            "save_total_limit": 2,
            "eval_strategy": "steps",
            "eval_steps": 4,
        },
    )
    model = AutoModelForCausalLM.from_pretrained(path)
    trainer = Trainer(
        model,
        args,
        train_dataset=token_dataset,
        eval_dataset=token_dataset[:4],
        callbacks=[lambda event, trainer, payload: events.append(event)],
    )
    trainer.train()
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint-5",
        "checkpoint-6",
        "logs.jsonl",
        "training_curves.png",
    ]  # rotated, no temp folders; the log and the plot
    ckpt = run / "checkpoint-6"
    assert {
        "config.json",
        "model.safetensors",
        "optimizer.safetensors",
        "scheduler.json",
        "rng_state.safetensors",
        "trainer_state.json",
        "training_args.json",
    } <= {p.name for p in ckpt.iterdir()}
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and state["max_steps"] == 6
    assert [e["step"] for e in state["log_history"] if "eval_loss" in e] == [4, 6]  # and at the last step
    assert events.count("save") == 6 and events.count("evaluate") == 2 and events.count("step_end") == 6

    # the final weights load in transformers unchanged
    trainer.save_model(tmp_path / "final")
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "final")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(hf.state_dict()[name], value)


def test_resume_errors_name_the_path(tiny_checkpoint, token_dataset, tmp_path):
    from xf_train.errors import CheckpointNotFoundError

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint("LlamaForCausalLM"))
    trainer = Trainer(
        model, TrainingArguments(output_dir=str(tmp_path / "empty"), **COMMON), train_dataset=token_dataset
    )
    with pytest.raises(CheckpointNotFoundError, match="has no checkpoint-<step> folder"):
        trainer.train(resume_from_checkpoint=True)
    with pytest.raises(FileNotFoundError, match="trainer_state.json"):
        trainer.train(resume_from_checkpoint=tmp_path)
    args = TrainingArguments(output_dir=str(tmp_path), eval_strategy="epoch", **COMMON)
    with pytest.raises(ValueError, match="eval_strategy='epoch' but the Trainer has no eval_dataset"):
        Trainer(model, args, train_dataset=token_dataset).train()


def test_classifier_trains_on_minilm_with_tokenizer_padding(tmp_path):
    from xf_core.testing import minilm_dir
    from xf_load import AutoModelForSequenceClassification
    from xf_tokenize import AutoTokenizer

    minilm = str(minilm_dir())
    tokenizer = AutoTokenizer.from_pretrained(minilm)
    texts = [
        "great movie",
        "awful film",
        "loved it a lot",
        "hated every minute",
        "wonderful",
        "terrible plot",
    ]
    data = [
        {"text": t, "label": i % 2, **tokenizer(t)} for i, t in enumerate(texts)
    ]  # ragged rows, a text column
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=2)
    model.bert.embeddings.requires_grad_(
        False
    )  # frozen parameters stay out of the optimizer (and keep this fast)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=3,
        learning_rate=1e-3,
        max_steps=8,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(model, args, train_dataset=data, eval_dataset=data, processing_class=tokenizer)
    before = trainer.evaluate()["eval_loss"]
    frozen = model.bert.embeddings.word_embeddings.weight.clone()
    trainer.train()
    assert trainer.evaluate()["eval_loss"] < before / 2
    assert torch.equal(model.bert.embeddings.word_embeddings.weight, frozen)


def test_bf16_autocast_trains_close_to_fp32(tiny_checkpoint, token_dataset, tmp_path):
    path = tiny_checkpoint("LlamaForCausalLM")
    curves = []
    for bf16 in (False, True):
        model = AutoModelForCausalLM.from_pretrained(path)
        args = TrainingArguments(output_dir=str(tmp_path), bf16=bf16, max_steps=3, **COMMON)
        state = Trainer(model, args, train_dataset=token_dataset).train()
        curves.append([e["loss"] for e in state.log_history if "loss" in e])
        assert model.dtype == torch.float32  # autocast: the weights stay fp32
    assert curves[1] == pytest.approx(curves[0], abs=0.05)
    assert curves[1] != curves[0]  # the forward really ran in bfloat16


def test_accumulation_equals_one_large_batch(tiny_checkpoint, token_dataset, tmp_path):
    path = tiny_checkpoint("LlamaForCausalLM")
    runs = []
    for batch_size, accumulation in ((4, 1), (2, 2), (1, 4)):
        model = AutoModelForCausalLM.from_pretrained(path)
        settings = {
            **COMMON,
            "per_device_train_batch_size": batch_size,
            "gradient_accumulation_steps": accumulation,
        }
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, logging_strategy="epoch", **settings)
        state = Trainer(model, args, train_dataset=token_dataset[:8]).train()
        runs.append((state.log_history, model.state_dict()))
    for logs, weights in runs[1:]:
        # 8 rows, 4 per step: 2 steps an epoch, so epoch logging gives one averaged entry per epoch
        assert [e["step"] for e in logs if "loss" in e] == [2, 3]
        for ours, reference in zip(logs, runs[0][0]):
            if "loss" in ours:
                assert ours["loss"] == pytest.approx(reference["loss"], abs=1e-5)
        for name, value in runs[0][1].items():
            torch.testing.assert_close(weights[name], value, rtol=0, atol=1e-5)


def test_model_card_lists_hyperparameters_and_eval_results(tiny_checkpoint, token_dataset, tmp_path):
    import huggingface_hub

    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint("LlamaForCausalLM"))
    settings = {**COMMON, "eval_strategy": "steps", "eval_steps": 2, "max_steps": 4}
    args = TrainingArguments(output_dir=str(tmp_path / "run"), **settings)
    trainer = Trainer(model, args, train_dataset=token_dataset, eval_dataset=token_dataset[:4])
    trainer.train()
    path = trainer.create_model_card(finetuned_from="tiny-llama", dataset="tokens", license="apache-2.0")
    card = huggingface_hub.ModelCard.load(path)  # the front matter parses as Hub metadata
    assert card.data.base_model == "tiny-llama" and card.data.license == "apache-2.0"
    assert "generated_from_trainer" in card.data.tags
    text = path.read_text()
    assert "- learning_rate: 0.003" in text and "- total_train_batch_size: 4" in text
    last_eval = [e for e in trainer.state.log_history if "eval_loss" in e][-1]["eval_loss"]
    assert f"- Loss: {last_eval:.4f}" in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in table[0].split("|")[1:-1]]
    assert len(table) == 3 and header == ["Training Loss", "Epoch", "Step", "Validation Loss"]  # + 2 evals


def test_evaluate_without_labels_gives_metrics_only(tiny_checkpoint, token_dataset, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_checkpoint("LlamaForCausalLM"))
    rows = [{k: v for k, v in row.items() if k != "labels"} for row in token_dataset]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_eval_batch_size=5, disable_tqdm=True)
    trainer = Trainer(
        model, args, eval_dataset=rows, compute_metrics=lambda p: {"rows": float(len(p.predictions))}
    )
    assert trainer.evaluate() == {"eval_rows": 11.0}
    with pytest.raises(ValueError, match="returned no loss.*'labels'"):
        Trainer(model, args, train_dataset=rows).train()


def test_accumulation_of_a_mean_loss_head_equals_one_large_batch(tiny_checkpoint, token_dataset, tmp_path):
    from xf_load import AutoModelForSequenceClassification

    # its forward takes **kwargs but not num_items_in_batch: its loss is a mean per micro-batch
    path = tiny_checkpoint("BertForSequenceClassification")
    rows = [
        {"input_ids": r["input_ids"], "attention_mask": r["attention_mask"], "label": i % 3}
        for i, r in enumerate(token_dataset[:8])
    ]
    weights, logs = [], []
    for batch_size, accumulation in ((8, 1), (2, 4)):
        model = AutoModelForSequenceClassification.from_pretrained(path)
        settings = {
            **COMMON,
            "per_device_train_batch_size": batch_size,
            "gradient_accumulation_steps": accumulation,
        }
        args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, **settings)
        state = Trainer(model, args, train_dataset=rows).train()
        weights.append(model.state_dict())
        logs.append([v for e in state.log_history if "loss" in e for v in (e["loss"], e["grad_norm"])])
    assert logs[1] == pytest.approx(logs[0], abs=1e-5)  # loss and gradient norm, not 4x larger
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=0, atol=1e-5)
