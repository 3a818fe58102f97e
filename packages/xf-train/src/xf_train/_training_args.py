"""``TrainingArguments``: transformers' field names and defaults for the options xf-train implements.

Fields xf-train does not implement are absent, so passing one is an error (a ``TypeError`` from the
dataclass, or :class:`~xf_train.errors.TrainingArgumentsError` from :meth:`TrainingArguments.from_dict`)
rather than a silent no-op. Works with :class:`xf_core.ArgumentParser`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

from xf_train.errors import TrainingArgumentsError

__all__ = ["TrainingArguments"]

SchedulerName = Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial"]
Strategy = Literal["no", "steps", "epoch"]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainingArguments:
    """What the :class:`~xf_train.Trainer` does; names and defaults as in transformers."""

    output_dir: str | None = field(
        default=None, metadata=_help("Checkpoints go here (default: trainer_output).")
    )
    # Only output_dir may be positional, as in transformers' TrainingArguments("out"); the rest by keyword.
    _: KW_ONLY
    per_device_train_batch_size: int = 8
    per_device_eval_batch_size: int = 8
    gradient_accumulation_steps: int = field(default=1, metadata=_help("Micro-batches per optimizer step."))
    learning_rate: float = 5e-5
    weight_decay: float = field(
        default=0.0, metadata=_help("AdamW decay; never applied to biases and norms.")
    )
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    optim: Literal["adamw_torch", "adamw_torch_fused"] = "adamw_torch_fused"
    max_grad_norm: float = field(
        default=1.0, metadata=_help("Clip the gradient norm to this; 0 turns it off.")
    )
    num_train_epochs: float = 3.0
    max_steps: int = field(
        default=-1, metadata=_help("Optimizer steps to run; > 0 overrides num_train_epochs.")
    )
    lr_scheduler_type: SchedulerName = "linear"
    warmup_steps: float = field(
        default=0, metadata=_help("Warmup steps; a value below 1 is a ratio of all steps.")
    )
    warmup_ratio: float | None = field(
        default=None, metadata=_help("Warmup as a ratio of all steps (v4 name).")
    )
    logging_strategy: Strategy = "steps"
    logging_steps: float = field(
        default=500, metadata=_help("Log every N steps; below 1: a ratio of all steps.")
    )
    logging_first_step: bool = False
    eval_strategy: Strategy = "no"
    eval_steps: float | None = field(
        default=None, metadata=_help("Evaluate every N steps (default: logging_steps).")
    )
    save_strategy: Strategy = "steps"
    save_steps: float = 500
    save_total_limit: int | None = field(default=None, metadata=_help("Keep at most this many checkpoints."))
    save_only_model: bool = False
    seed: int = 42
    data_seed: int | None = field(default=None, metadata=_help("Seed of the data order (default: seed)."))
    train_sampling_strategy: Literal["random", "sequential"] = "random"
    bf16: bool = field(default=False, metadata=_help("Run forward passes under bfloat16 autocast."))
    fp16: bool = False
    report_to: str = field(
        default="none", metadata=_help("Only 'none': logs go to log_history and the xf logger.")
    )
    dataloader_drop_last: bool = False
    remove_unused_columns: bool = True
    label_names: list[str] | None = None
    disable_tqdm: bool | None = None
    use_cpu: bool = False
    debug: str = field(
        default="", metadata=_help("'underflow_overflow': raise at the first inf/nan in a forward.")
    )
    resume_from_checkpoint: str | None = None

    def __post_init__(self) -> None:
        if self.output_dir is None:
            self.output_dir = "trainer_output"
        for name in (
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "gradient_accumulation_steps",
        ):
            if getattr(self, name) < 1:
                self._fail(name, "must be at least 1")
        for name in ("learning_rate", "weight_decay", "adam_epsilon", "max_grad_norm", "num_train_epochs"):
            if getattr(self, name) < 0:
                self._fail(name, "must not be negative")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                self._fail(name, "must be in [0, 1)")
        if self.warmup_steps < 0:
            self._fail("warmup_steps", "must not be negative (a value below 1 is a ratio of all steps)")
        if self.warmup_ratio is not None:
            if not 0.0 <= self.warmup_ratio <= 1.0:
                self._fail("warmup_ratio", "must be in [0, 1]")
            if self.warmup_steps > 0:
                self._fail("warmup_ratio", "cannot be combined with warmup_steps; pass only one of them")
        for name in ("logging_steps", "save_steps") + (
            ("eval_steps",) if self.eval_steps is not None else ()
        ):
            value = getattr(self, name)
            if value <= 0 or (value > 1 and value != int(value)):
                self._fail(name, "must be a whole number of steps, or a ratio in (0, 1)")
        if self.eval_strategy == "steps" and self.eval_steps is None:
            self.eval_steps = self.logging_steps
        if self.save_total_limit is not None and self.save_total_limit < 1:
            self._fail("save_total_limit", "must be at least 1, or None to keep every checkpoint")
        if self.fp16:
            self._fail("fp16", "is not implemented by xf-train (no loss scaler); use bf16=True instead")
        if self.debug not in ("", "underflow_overflow"):
            self._fail("debug", "must be '' or 'underflow_overflow'")
        if self.report_to not in ("none", "None", ""):
            self._fail(
                "report_to", "only 'none' is supported; read trainer.state.log_history or pass a callback"
            )

    def _fail(self, name: str, why: str) -> None:
        raise TrainingArgumentsError(f"TrainingArguments.{name}={getattr(self, name)!r} {why}.", key=name)

    @property
    def train_batch_size(self) -> int:
        return self.per_device_train_batch_size

    @property
    def eval_batch_size(self) -> int:
        return self.per_device_eval_batch_size

    def get_warmup_steps(self, num_training_steps: int) -> int:
        """Warmup steps for a run of ``num_training_steps``: whole steps, or a ratio rounded up."""
        ratio = self.warmup_ratio if self.warmup_ratio is not None else self.warmup_steps
        if self.warmup_ratio is None and self.warmup_steps >= 1:
            return int(self.warmup_steps)
        return math.ceil(num_training_steps * ratio)

    def steps_for(self, value: float, num_training_steps: int) -> int:
        """An interval given as whole steps or as a ratio (< 1) of ``num_training_steps``."""
        return int(value) if value >= 1 else max(1, math.ceil(num_training_steps * value))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingArguments:
        """Build from a dict; an unknown key is an error that names it and the nearest known field."""
        known = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in known:
                near = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else "; xf-train does not implement it."
                raise TrainingArgumentsError(f"TrainingArguments has no field {key!r}{hint}", key=key)
        return cls(**values)
