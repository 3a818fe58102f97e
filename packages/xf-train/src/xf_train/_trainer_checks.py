"""The Trainer's refusals: a run that cannot train is refused before its first step, and a NaN/inf loss or
gradient stops it before the optimizer step, naming the step and the first non-finite parameter or gradient."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from xf_train._data import is_map_style
from xf_train._trainer_ckpt import _sorted_checkpoints
from xf_train._trainer_dist import fsdp_reshard
from xf_train.errors import NonFiniteError, TrainingArgumentsError

if TYPE_CHECKING:
    from xf_train._callbacks import TrainerState
    from xf_train._training_args import TrainingArguments


class TrainerChecksMixin:
    """``_check_run`` and the non-finite guard of :class:`~xf_train.Trainer`."""

    args: TrainingArguments
    model: nn.Module
    state: TrainerState
    train_dataset: Any
    eval_dataset: Any
    optimizer: torch.optim.Optimizer | None
    scaler: torch.amp.GradScaler | None

    if TYPE_CHECKING:  # provided by Trainer

        def num_batches_per_epoch(self) -> int: ...

    def _check_run(self) -> None:
        """Refuse, before any step, a run that cannot train: no data, no step, or unusable sizes (the
        arguments may have been changed after they were validated)."""
        a = self.args
        if self.train_dataset is None:
            raise TrainingArgumentsError("Trainer.train() needs a train_dataset.", key="train_dataset")
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps"):
            if getattr(a, name) < 1:
                raise TrainingArgumentsError(
                    f"TrainingArguments.{name}={getattr(a, name)!r} must be at least 1.", key=name
                )
        if a.max_steps == 0:
            raise TrainingArgumentsError(
                "TrainingArguments.max_steps=0 runs no step; pass max_steps > 0, or -1 to train for "
                "num_train_epochs.",
                key="max_steps",
            )
        if not is_map_style(self.train_dataset):
            if a.max_steps < 0:
                raise TrainingArgumentsError(
                    f"train_dataset is a stream ({type(self.train_dataset).__name__}, no length), so the number "
                    "of steps in an epoch is unknown; pass TrainingArguments.max_steps > 0.",
                    key="max_steps",
                )
        elif len(self.train_dataset) == 0:
            raise TrainingArgumentsError(
                "train_dataset is empty (0 rows), so there is nothing to train on; pass a dataset with at "
                "least one example.",
                key="train_dataset",
            )
        elif self.num_batches_per_epoch() == 0:
            raise TrainingArgumentsError(
                f"train_dataset has {len(self.train_dataset)} rows, fewer than per_device_train_batch_size="
                f"{a.per_device_train_batch_size}, and dataloader_drop_last=True drops that only batch, so no "
                "step would run; lower the batch size or set dataloader_drop_last=False.",
                key="dataloader_drop_last",
            )
        if a.max_steps < 0 and a.num_train_epochs <= 0:
            raise TrainingArgumentsError(
                f"TrainingArguments.num_train_epochs={a.num_train_epochs!r} with max_steps={a.max_steps} runs "
                "no step; pass num_train_epochs > 0 or max_steps > 0.",
                key="num_train_epochs",
            )
        if a.eval_strategy != "no" and self.eval_dataset is None:
            raise TrainingArgumentsError(
                f"eval_strategy={a.eval_strategy!r} but the Trainer has no eval_dataset; pass one or set "
                "eval_strategy='no'.",
                key="eval_strategy",
            )
        if a.eval_strategy != "no" and is_map_style(self.eval_dataset) and len(self.eval_dataset) == 0:
            raise TrainingArgumentsError(
                f"eval_strategy={a.eval_strategy!r} but eval_dataset is empty (0 rows), so no evaluation could "
                "give a result; pass an eval_dataset with at least one example or set eval_strategy='no'.",
                key="eval_dataset",
            )
        if a.fsdp:
            fsdp_reshard(a)  # an unsupported option is refused before any step

    def _guard(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> None:
        """Raise :class:`NonFiniteError` before the optimizer step when the loss or a gradient is NaN/inf
        (with fp16 an inf gradient is the scaler's business: it skips the step)."""
        finite = (
            torch.isfinite(loss)
            if self.scaler is not None
            else torch.isfinite(loss) & torch.isfinite(grad_norm)
        )
        if finite.item():
            return
        step = self.state.global_step + 1
        name, what = "loss", f"the loss is {loss.item()}"
        for param_name, p in self.model.named_parameters():
            if not torch.isfinite(p).all():
                name, what = param_name, f"parameter {param_name} is not finite (its weights hold NaN/inf)"
                break
        else:
            for param_name, p in self.model.named_parameters():
                if p.grad is not None and not torch.isfinite(p.grad).all():
                    name, what = param_name, f"the gradient of {param_name} is NaN/inf (loss {loss.item()})"
                    break
        self.optimizer.zero_grad(set_to_none=True)  # type: ignore[union-attr]
        saved = _sorted_checkpoints(Path(self.args.output_dir))  # type: ignore[arg-type]
        last = f"the last checkpoint, {saved[-1]}, is untouched" if saved else "no checkpoint was written"
        raise NonFiniteError(
            f"training stopped at optimizer step {step}: {what}. The step was not applied, so the weights are "
            f"those after step {step - 1}, and {last}. Lower the learning rate, check the data of this step "
            "or the weights, or pass TrainingArguments(stop_on_nan_inf=False) to train on.",
            step=step,
            name=name,
        )
