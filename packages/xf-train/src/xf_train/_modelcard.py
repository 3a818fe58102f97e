"""The README.md model card a Trainer writes: front matter, hyperparameters and the results table."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xf_train._trainer import Trainer

__all__ = ["model_card"]


def _as_list(value: str | list[str] | None) -> list[str]:
    return [] if value is None else [value] if isinstance(value, str) else list(value)


def _yaml_list(key: str, values: list[str]) -> list[str]:
    return [f"{key}:", *(f"- {v}" for v in values)] if values else []


def _title(key: str) -> str:
    """``eval_loss`` -> ``Loss``, ``eval_exact_match`` -> ``Exact Match`` (the card's column names)."""
    return key.removeprefix("eval_").replace("_", " ").title()


def _results_table(log_history: list[dict[str, float]]) -> list[str]:
    """One row per evaluation: the training loss logged last before it, epoch, step and eval metrics."""
    rows, train_loss = [], "No log"
    for entry in log_history:
        if "loss" in entry:
            train_loss = f"{entry['loss']:.4f}"
        elif "eval_loss" in entry:
            rows.append(
                {"Training Loss": train_loss, "Epoch": f"{entry['epoch']:.4f}", "Step": str(entry["step"])}
            )
            rows[-1].update({_title(k): f"{v:.4f}" for k, v in entry.items() if k.startswith("eval_")})
    if not rows:
        return []
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(row.get(h, "") for h in header) + " |" for row in rows]
    return ["### Training results", "", *lines, ""]


def model_card(
    trainer: Trainer,
    *,
    model_name: str,
    language: str | list[str] | None = None,
    license: str | None = None,
    tags: str | list[str] | None = None,
    finetuned_from: str | None = None,
    dataset: str | list[str] | None = None,
) -> str:
    """The card's markdown (with YAML front matter), from the trainer's arguments and log history."""
    a = trainer.args
    front = ["---", "library_name: xf", *([f"license: {license}"] if license else [])]
    front += [f"base_model: {finetuned_from}"] if finetuned_from else []
    front += _yaml_list("language", _as_list(language)) + _yaml_list(
        "tags", [*_as_list(tags), "generated_from_trainer"]
    )
    front += [*_yaml_list("datasets", _as_list(dataset)), "---", ""]
    about = (
        f"This model is a fine-tuned version of {finetuned_from}"
        if finetuned_from
        else "This model was trained"
    )
    about += f" on {', '.join(_as_list(dataset))}." if dataset else " on an unknown dataset."
    hyper = {
        "learning_rate": a.learning_rate,
        "train_batch_size": a.per_device_train_batch_size,
        "eval_batch_size": a.per_device_eval_batch_size,
        "seed": a.seed,
        "gradient_accumulation_steps": a.gradient_accumulation_steps,
        "total_train_batch_size": a.per_device_train_batch_size * a.gradient_accumulation_steps,
        "optimizer": f"{a.optim.upper()} with betas=({a.adam_beta1},{a.adam_beta2}), epsilon={a.adam_epsilon}, "
        f"weight_decay={a.weight_decay}",
        "lr_scheduler_type": a.lr_scheduler_type,
        "lr_scheduler_warmup_steps": a.get_warmup_steps(trainer.state.max_steps or 1),
        **({"training_steps": a.max_steps} if a.max_steps > 0 else {"num_epochs": a.num_train_epochs}),
        **({"mixed_precision_training": "bf16 autocast"} if a.bf16 else {}),
    }
    evals = [e for e in trainer.state.log_history if "eval_loss" in e]
    results = [
        f"- {_title(k)}: {v:.4f}" for k, v in (evals[-1] if evals else {}).items() if k.startswith("eval_")
    ]
    body = [f"# {model_name}", "", about, ""]
    body += ["It achieves the following results on the evaluation set:", *results, ""] if results else []
    body += ["## Training procedure", "", "### Training hyperparameters", ""]
    body += [f"- {k}: {v}" for k, v in hyper.items()] + [""]
    body += _results_table(trainer.state.log_history)
    return "\n".join(front + body)
