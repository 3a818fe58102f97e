"""``TrainingArguments``: transformers' field names and defaults for the options xf-train implements.

Fields xf-train does not implement are absent, so passing one is an error rather than a silent no-op:
:class:`~xf_train.errors.UnsupportedArgumentError` (a ``TypeError``) naming it and what to use instead
(:data:`UNSUPPORTED` lists transformers' fields that have an xf answer; any other unknown name gets the nearest
known field). Values are checked up front, each error naming its field. Works with
:class:`xf_core.ArgumentParser`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import json
import math
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal

from xf_train.errors import TrainingArgumentsError, UnsupportedArgumentError

__all__ = ["UNSUPPORTED", "TrainingArguments"]

SchedulerName = Literal["linear", "cosine", "constant", "constant_with_warmup", "polynomial"]
Strategy = Literal["no", "steps", "epoch"]
OptimName = Literal["adamw_torch", "adamw_torch_fused", "sgd", "adafactor", "adamw_bnb_8bit", "adamw_8bit"]

_NO_HUB = (
    "push_to_hub is not implemented: save_model() then upload the folder with huggingface_hub's upload_folder"
)
# transformers' fields xf-train does not implement, and what to do instead.
UNSUPPORTED: dict[str, str] = {
    "deepspeed": "use xf-parallel (FSDP) for sharded training",
    "accelerator_config": "xf-train does not run through accelerate; drop it",
    "auto_find_batch_size": "set per_device_train_batch_size (and gradient_accumulation_steps) yourself",
    "group_by_length": "sort or bucket the dataset yourself before passing it",
    "neftune_noise_alpha": "add the embedding noise in the model's forward",
    "tpu_num_cores": "xf-train runs on CPU and CUDA only",
    "hub_model_id": _NO_HUB,
    "hub_token": _NO_HUB,
    "hub_strategy": _NO_HUB,
    "logging_dir": "logs go to output_dir (logs.jsonl; TensorBoard events in output_dir/runs)",
    "torch_compile_backend": "torch_compile=True uses the default inductor backend",
    "fp16_full_eval": "evaluation runs under the same autocast as training (fp16/bf16)",
    "bf16_full_eval": "evaluation runs under the same autocast as training (fp16/bf16)",
    "jit_mode_eval": "pass torch_compile=True",
    "use_liger_kernel": "not available in xf",
    "optim_target_modules": "GaLore/APOLLO optimizers are not available; pass optimizers=(...) to Trainer",
}


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
    optim: OptimName = field(
        default="adamw_torch_fused",
        metadata=_help("adamw_torch(_fused), sgd, adafactor, or adamw_bnb_8bit (needs bitsandbytes)."),
    )
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
    fp16: bool = field(
        default=False, metadata=_help("float16 autocast with a gradient scaler (where torch supports it).")
    )
    report_to: list[str] | None = field(
        default=None,
        metadata=_help(
            "'none' or [] (default), 'all', or tracker names: 'tensorboard', and through accelerate 'wandb', "
            "'mlflow', 'comet_ml', 'aim', 'clearml', 'dvclive', 'trackio', 'swanlab'; logs.jsonl in output_dir "
            "is always written."
        ),
    )
    dataloader_num_workers: int = 0
    dataloader_pin_memory: bool = True
    dataloader_persistent_workers: bool = False
    dataloader_prefetch_factor: int | None = None
    dataloader_drop_last: bool = False
    remove_unused_columns: bool = True
    label_names: list[str] | None = None
    disable_tqdm: bool | None = None
    use_cpu: bool = False
    debug: str = field(
        default="", metadata=_help("'underflow_overflow': raise at the first inf/nan in a forward.")
    )
    resume_from_checkpoint: str | None = None
    gradient_checkpointing: bool = False
    gradient_checkpointing_kwargs: dict[str, Any] | None = None
    torch_compile: bool = False
    torch_compile_mode: str | None = None
    label_smoothing_factor: float = 0.0
    load_best_model_at_end: bool = False
    metric_for_best_model: str | None = field(
        default=None, metadata=_help("Default 'loss' (eval_loss) when load_best_model_at_end.")
    )
    greater_is_better: bool | None = field(
        default=None, metadata=_help("Default: False for a metric ending in 'loss', else True.")
    )
    eval_accumulation_steps: int | None = field(
        default=None, metadata=_help("Move gathered eval outputs to the CPU every N eval batches.")
    )
    eval_delay: float = 0
    eval_on_start: bool = False
    prediction_loss_only: bool = False
    include_num_input_tokens_seen: str | None = field(
        default="no", metadata=_help("'no', 'all' (every input token) or 'non_padding' (attention mask).")
    )
    logging_nan_inf_filter: bool = True
    stop_on_nan_inf: bool = field(
        default=True,
        metadata=_help("xf: stop at a non-finite loss or gradient, naming the step and the parameter."),
    )
    ignore_data_skip: bool = False
    run_name: str | None = None
    push_to_hub: bool = False
    # The data-parallel fields (torchrun sets LOCAL_RANK/WORLD_SIZE); fsdp is applied by xf-parallel.
    local_rank: int = -1
    ddp_backend: str | None = field(default=None, metadata=_help("nccl, gloo, ... (default: by device)."))
    ddp_find_unused_parameters: bool | None = None
    ddp_bucket_cap_mb: int | None = None
    ddp_broadcast_buffers: bool | None = None
    ddp_timeout: int = 1800
    fsdp: str | None = field(default=None, metadata=_help("FSDP options; applied by xf-parallel."))
    fsdp_config: dict[str, Any] | None = None

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
        if self.fp16 and self.bf16:
            self._fail("fp16", "cannot be combined with bf16=True; pass only one of them")
        if self.debug not in ("", "underflow_overflow"):
            self._fail("debug", "must be '' or 'underflow_overflow'")
        self.report_to = _reporters(self.report_to)
        if self.dataloader_num_workers < 0:
            self._fail("dataloader_num_workers", "must not be negative (0 loads in the main process)")
        if self.dataloader_prefetch_factor is not None and self.dataloader_num_workers == 0:
            self._fail("dataloader_prefetch_factor", "needs dataloader_num_workers > 0")
        if self.eval_accumulation_steps is not None and self.eval_accumulation_steps < 1:
            self._fail("eval_accumulation_steps", "must be at least 1, or None to keep outputs on the device")
        if not 0.0 <= self.label_smoothing_factor < 1.0:
            self._fail("label_smoothing_factor", "must be in [0, 1)")
        if (
            self.optim in ("adamw_bnb_8bit", "adamw_8bit")
            and importlib.util.find_spec("bitsandbytes") is None
        ):
            self._fail(
                "optim",
                "needs bitsandbytes, which is not installed; pip install bitsandbytes or use adamw_torch",
            )
        if self.include_num_input_tokens_seen in (True, False):  # transformers' older boolean form
            self.include_num_input_tokens_seen = "all" if self.include_num_input_tokens_seen else "no"
        if self.include_num_input_tokens_seen not in ("no", "all", "non_padding"):
            self._fail("include_num_input_tokens_seen", "must be 'no', 'all' or 'non_padding'")
        if isinstance(self.gradient_checkpointing_kwargs, str):  # from a command line or a YAML file
            self.gradient_checkpointing_kwargs = json.loads(self.gradient_checkpointing_kwargs)
        if self.push_to_hub:
            self._fail(
                "push_to_hub",
                "is not implemented by xf-train (it works offline); call trainer.save_model() and upload the "
                "folder with huggingface_hub's upload_folder",
            )
        if self.load_best_model_at_end and self.metric_for_best_model is None:
            self.metric_for_best_model = "loss"
        if self.greater_is_better is None and self.metric_for_best_model is not None:
            self.greater_is_better = not self.metric_for_best_model.endswith("loss")
        if self.load_best_model_at_end:
            self._check_best_model_intervals()

    def _check_best_model_intervals(self) -> None:
        """load_best_model_at_end needs a checkpoint at every evaluation: same strategy, and with "steps" a
        save interval that is a multiple of the eval interval (transformers' rule)."""
        if self.save_strategy == "no" or self.eval_strategy != self.save_strategy:
            raise TrainingArgumentsError(
                f"TrainingArguments.load_best_model_at_end=True needs eval_strategy and save_strategy to match, "
                f"but eval_strategy={self.eval_strategy!r} and save_strategy={self.save_strategy!r}; set both "
                "to 'steps' or both to 'epoch'.",
                key="load_best_model_at_end",
            )
        eval_steps = self.eval_steps if self.eval_steps is not None else self.logging_steps
        if self.eval_strategy == "steps" and round(self.save_steps * 1e6) % round(eval_steps * 1e6) != 0:
            raise TrainingArgumentsError(
                f"TrainingArguments.save_steps={self.save_steps!r} must be a multiple of eval_steps="
                f"{eval_steps!r} under load_best_model_at_end=True, so that every evaluated model is saved.",
                key="save_steps",
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

    @property
    def world_size(self) -> int:
        import os

        return int(os.environ.get("WORLD_SIZE", "1"))

    @property
    def process_index(self) -> int:
        import os

        return int(os.environ.get("RANK", "0"))

    @property
    def should_save(self) -> bool:
        """Only the main process writes (checkpoints, logs), as in transformers."""
        return self.process_index == 0

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingArguments:
        """Build from a dict; an unknown key is an error that names it and the nearest known field."""
        return cls(**values)


def _refuse_unknown(kwargs: dict[str, Any]) -> None:
    """Raise :class:`UnsupportedArgumentError` for the first keyword that is not a field."""
    known = [f.name for f in dataclasses.fields(TrainingArguments)]
    for key in kwargs:
        if key in known:
            continue
        if key in UNSUPPORTED:
            raise UnsupportedArgumentError(
                f"TrainingArguments.{key} is not supported by xf-train: {UNSUPPORTED[key]}.", key=key
            )
        near = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {near[0]!r}?" if near else "xf-train does not implement it; drop it."
        raise UnsupportedArgumentError(f"TrainingArguments has no field {key!r}; {hint}", key=key)


_dataclass_init = TrainingArguments.__init__


@functools.wraps(_dataclass_init)
def _init(self: TrainingArguments, *args: Any, **kwargs: Any) -> None:
    _refuse_unknown(kwargs)
    _dataclass_init(self, *args, **kwargs)


TrainingArguments.__init__ = _init  # type: ignore[method-assign]


def _reporters(value: Any) -> list[str]:
    """transformers' report_to forms ("none", [], "all", a name, a list) as a list of names xf serves."""
    from xf_train._loggers import report_to_names

    return report_to_names(value)
