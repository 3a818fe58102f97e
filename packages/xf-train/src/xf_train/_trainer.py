"""``Trainer``: transformers' Trainer workflow as one explicit loop.

A step reads top to bottom: on_step_begin -> micro-batches (forward, backward; on_substep_end between them)
-> NaN/inf guard -> clip -> on_pre_optimizer_step -> optimizer step -> on_optimizer_step -> schedule ->
on_step_end -> log / evaluate / save as the callbacks' ``control`` says (transformers' order, see
:mod:`xf_train._callbacks`). With labels and a model whose forward takes ``num_items_in_batch``, each
micro-batch loss is a sum divided by the number of target tokens of the whole accumulated step (as
transformers), so gradient accumulation equals one big batch; label smoothing uses the same normalisation.
Everything needed to resume is written to ``checkpoint-<step>/`` atomically: weights (``save_pretrained``),
optimizer, scheduler, gradient scaler, RNG states and ``trainer_state.json``. The data order of epoch ``e``
is a permutation drawn from ``data_seed + e`` (or sequential), so resuming skips exactly the batches already
seen (:mod:`xf_train._data`).

A loss or gradient that is NaN or inf stops the run before the optimizer step with
:class:`~xf_train.errors.NonFiniteError` naming the step and the first non-finite parameter or gradient
(``stop_on_nan_inf=False`` trains on); the weights and the last checkpoint stay those of the step before.

Logs go to ``state.log_history``, ``output_dir/logs.jsonl`` and the ``report_to`` loggers; at the end of
training ``output_dir/training_curves.png`` plots the loss and the learning rate (:mod:`xf_train._loggers`).
Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in torch's ``DistributedDataParallel``, each
process reads its share of every batch, the logged loss is the mean over processes, and only process 0 writes.

What the model is comes from xf-load's public API: its head kind (:func:`xf_load.head_kind_of`) decides
label shifting (a causal-LM head predicts token t+1 at position t, so the first label is never a target), and
resuming reads the weights with :func:`xf_load.load_weights` (sharded or single file, tied weights stored
once, mismatches named). A model with no head kind, such as a plain ``nn.Module``, computes its own loss from
``labels``: every label that is not -100 counts as one target.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from xf_core import atomic_directory, check_interrupted_save, os_error
from xf_core.errors import XfError
from xf_core.logging import get_logger
from xf_load.heads import HeadKind, head_kind_of
from xf_train._callbacks import (
    CallbackHandler,
    DefaultFlowCallback,
    FunctionCallback,
    PrinterCallback,
    ProgressCallback,
    TrainerCallback,
    TrainerControl,
    TrainerState,
)
from xf_train._collators import DataCollatorWithPadding, default_data_collator
from xf_train._data import ColumnCollate, EpochBatchSampler, Stream, is_map_style, make_loader
from xf_train._loggers import (
    CURVES_NAME,
    LOGS_NAME,
    REPORTER_CALLBACKS,
    JsonlLoggerCallback,
    write_training_curves,
)
from xf_train._optim import create_optimizer, get_scheduler
from xf_train._state_io import (
    check_training_state,
    load_optimizer_state,
    load_rng_state,
    load_scheduler_state,
    save_training_state,
)
from xf_train._training_args import TrainingArguments
from xf_train.errors import CheckpointNotFoundError, NonFiniteError, OutputDirError, TrainingArgumentsError

__all__ = ["EvalPrediction", "PredictionOutput", "Trainer", "TrainerState"]

logger = get_logger(__name__)

PREFIX_CHECKPOINT_DIR = "checkpoint"
TRAINER_STATE_NAME = "trainer_state.json"
SCALER_NAME = "scaler.json"
Callback = Callable[[str, "Trainer", dict[str, Any]], None]


class EvalPrediction(NamedTuple):
    """What ``compute_metrics`` receives: all eval logits and labels, padded across batches with -100."""

    predictions: torch.Tensor
    label_ids: torch.Tensor | None


class PredictionOutput(NamedTuple):
    """What :meth:`Trainer.predict` returns (transformers' names)."""

    predictions: torch.Tensor | None
    label_ids: torch.Tensor | None
    metrics: dict[str, float]


class Trainer:
    """Train and evaluate an xf-load (or any ``nn.Module`` returning ``.loss``) model."""

    def __init__(
        self,
        model: nn.Module,
        args: TrainingArguments | None = None,
        *,
        data_collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]] | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class: Any = None,
        compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None = None,
        callbacks: Sequence[TrainerCallback | type[TrainerCallback] | Callback] | None = None,
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LRScheduler | None] = (
            None,
            None,
        ),
        preprocess_logits_for_metrics: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
        | None = None,
    ) -> None:
        self.args: TrainingArguments = args if args is not None else TrainingArguments()
        _check_output_dir(self.args.output_dir)  # type: ignore[arg-type]  # as transformers: at init, not at the first save
        self.model = model
        self.model_wrapped: nn.Module = model
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.processing_class = processing_class
        if data_collator is None:
            pads = processing_class is not None and hasattr(processing_class, "pad")
            data_collator = DataCollatorWithPadding(processing_class) if pads else default_data_collator
        self.data_collator = data_collator
        self.compute_metrics = compute_metrics
        self.preprocess_logits_for_metrics = preprocess_logits_for_metrics
        self.optimizer: torch.optim.Optimizer | None = optimizers[0]
        self.lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None = optimizers[1]
        self.scaler: torch.amp.GradScaler | None = None
        self._compiled: Callable[..., Any] | None = None
        self._tokens: int | torch.Tensor = 0
        signature = inspect.signature(model.forward).parameters
        self._forward_args = set(signature)
        # Only a forward that names num_items_in_batch normalises by it. transformers also passes it to any
        # forward with **kwargs, so a mean loss that ignores it (BERT heads) is not divided by the
        # accumulation steps there: its gradients grow with gradient_accumulation_steps. Here they do not.
        self._accepts_num_items = "num_items_in_batch" in signature
        # A causal-LM head shifts labels: position 0 of the labels is never a target, so it is not counted.
        self._shifts_labels = head_kind_of(model) == HeadKind.CAUSAL_LM
        self.state = TrainerState(
            is_world_process_zero=self.args.process_index == 0,
            is_local_process_zero=int(os.environ.get("LOCAL_RANK", "0")) == 0,
        )
        self.control = TrainerControl()
        progress = PrinterCallback() if self.args.disable_tqdm else ProgressCallback()
        reporters = [REPORTER_CALLBACKS[name]() for name in self.args.report_to]  # type: ignore[union-attr]
        self.callback_handler: CallbackHandler = CallbackHandler(
            [DefaultFlowCallback(), JsonlLoggerCallback(), *reporters, progress], model=model
        )
        for callback in callbacks or ():
            self.add_callback(callback)
        torch.manual_seed(self.args.seed)
        random.seed(self.args.seed)
        self._call("on_init_end")

    # ---- callbacks ------------------------------------------------------------------------------------------

    def add_callback(self, callback: TrainerCallback | type[TrainerCallback] | Callback) -> None:
        """Add a TrainerCallback (instance or class) or a plain ``f(event, trainer, payload)``."""
        if not isinstance(callback, (TrainerCallback, type)):
            callback = FunctionCallback(callback, self)
        self.callback_handler.add_callback(callback)

    def pop_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> TrainerCallback | None:
        return self.callback_handler.pop_callback(callback)

    def remove_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        self.callback_handler.remove_callback(callback)

    def _call(self, event: str, **kwargs: Any) -> None:
        self.callback_handler.call(event, self.args, self.state, self.control, **kwargs)

    # ---- data -----------------------------------------------------------------------------------------------

    def _keep_columns(self) -> frozenset[str] | None:
        """The row keys the model's forward takes (plus the labels), or None to keep every key."""
        if not self.args.remove_unused_columns:
            return None
        return frozenset(
            self._forward_args | {"label", "label_ids", "labels", *(self.args.label_names or [])}
        )

    def get_train_dataloader(self) -> torch.utils.data.DataLoader[Any]:
        """The training DataLoader; for map-style data its batch sampler is an :class:`EpochBatchSampler`."""
        a = self.args
        dataset = self.train_dataset
        sampler = None
        if is_map_style(dataset):
            sampler = EpochBatchSampler(
                len(dataset),
                a.per_device_train_batch_size,
                drop_last=a.dataloader_drop_last,
                shuffle=a.train_sampling_strategy != "sequential",
                seed=a.data_seed if a.data_seed is not None else a.seed,
                rank=a.process_index,
                world_size=a.world_size,
            )
        elif not isinstance(dataset, torch.utils.data.IterableDataset):
            dataset = Stream(dataset)
        collate = ColumnCollate(self.data_collator, self._keep_columns())
        return make_loader(
            dataset, batch_size=a.per_device_train_batch_size, collate=collate, args=a, batch_sampler=sampler
        )

    def get_eval_dataloader(self, dataset: Any) -> torch.utils.data.DataLoader[Any]:
        a = self.args
        sampler = None
        if is_map_style(dataset):
            sampler = EpochBatchSampler(
                len(dataset), a.per_device_eval_batch_size, drop_last=False, shuffle=False, seed=a.seed
            )
        elif not isinstance(dataset, torch.utils.data.IterableDataset):
            dataset = Stream(dataset)
        collate = ColumnCollate(self.data_collator, self._keep_columns())
        return make_loader(
            dataset, batch_size=a.per_device_eval_batch_size, collate=collate, args=a, batch_sampler=sampler
        )

    def num_batches_per_epoch(self) -> int:
        n, bs = len(self.train_dataset), self.args.per_device_train_batch_size  # type: ignore[arg-type]
        n = math.ceil(n / self.args.world_size)
        return n // bs if self.args.dataloader_drop_last else math.ceil(n / bs)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        device = self._device()
        return {
            k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()
        }

    # ---- optimizer ------------------------------------------------------------------------------------------

    def create_optimizer_and_scheduler(self, num_training_steps: int) -> None:
        a = self.args
        if self.optimizer is None:
            self.optimizer = create_optimizer(
                self.model,
                lr=a.learning_rate,
                weight_decay=a.weight_decay,
                betas=(a.adam_beta1, a.adam_beta2),
                eps=a.adam_epsilon,
                optim=a.optim,
            )
        if self.lr_scheduler is None:
            self.lr_scheduler = get_scheduler(
                a.lr_scheduler_type,
                self.optimizer,
                num_warmup_steps=a.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
            )
        self.callback_handler.references.update(optimizer=self.optimizer, lr_scheduler=self.lr_scheduler)

    # ---- the loss -------------------------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        a = self.args
        dtype = torch.float16 if a.fp16 else torch.bfloat16
        return torch.autocast(self._device().type, dtype=dtype, enabled=a.bf16 or a.fp16)

    def _loss(self, batch: dict[str, Any], num_items_in_batch: torch.Tensor | None) -> torch.Tensor:
        smoothing = self.args.label_smoothing_factor
        labels = batch.pop("labels", None) if smoothing and "labels" in batch else None
        if num_items_in_batch is not None:
            batch = {**batch, "num_items_in_batch": num_items_in_batch}
        model = self._compiled if self._compiled is not None else self.model_wrapped
        with self._autocast():
            outputs = model(**batch)
        if labels is not None:
            return _smoothed_loss(
                _field(outputs, "logits"),
                labels,
                smoothing,
                shift=self._shifts_labels,
                num_items=num_items_in_batch,
            )
        loss = _field(outputs, "loss")
        if loss is None:
            raise TrainingArgumentsError(
                f"{type(self.model).__name__} returned no loss: the batches have keys {sorted(batch)} but no "
                "'labels'. Use a collator that makes labels (e.g. DataCollatorForLanguageModeling) or add them.",
                key="labels",
            )
        return loss

    def _count_items(self, micro_batches: list[dict[str, Any]]) -> torch.Tensor | None:
        if "labels" not in micro_batches[0]:
            return None
        if not self._accepts_num_items and not self.args.label_smoothing_factor:
            return None
        labels = [b["labels"][..., 1:] if self._shifts_labels else b["labels"] for b in micro_batches]
        count = sum(lab.ne(-100).sum() for lab in labels).to(self._device())  # type: ignore[union-attr]
        if self.args.world_size > 1:  # every process divides by the targets of the whole global batch
            torch.distributed.all_reduce(count)
        return count

    def _count_tokens(self, batch: dict[str, Any]) -> int | torch.Tensor:
        ids = batch.get("input_ids")
        if ids is None:
            return 0
        mask = batch.get("attention_mask")
        if self.args.include_num_input_tokens_seen == "non_padding" and mask is not None:
            return mask.sum()
        return ids.numel()

    # ---- one optimizer step ---------------------------------------------------------------------------------

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, Any]:
        """One optimizer step over ``micro_batches`` (one accumulation window); returns its loss, grad norm
        (tensors, not synchronised) and learning rate."""
        if self.optimizer is None or self.lr_scheduler is None:
            raise TrainingArgumentsError(
                "train_step() needs an optimizer and a scheduler: call "
                "create_optimizer_and_scheduler(num_training_steps) first (train() does).",
                key="optimizers",
            )
        a = self.args
        self.model_wrapped.train()
        self._call("on_step_begin")
        num_items = self._count_items(micro_batches)
        total = torch.zeros((), device=self._device())
        for i, batch in enumerate(micro_batches):
            self._tokens += self._count_tokens(batch)
            last = i == len(micro_batches) - 1
            sync = contextlib.nullcontext() if last or a.world_size == 1 else self.model_wrapped.no_sync()  # type: ignore[operator]
            with sync:
                loss = self._loss(self._to_device(batch), num_items)
                if num_items is None:
                    loss = loss / len(micro_batches)
                elif a.world_size > 1:
                    loss = loss * a.world_size  # DDP averages the gradients: undo it for a global-token mean
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            total += loss.detach() / (a.world_size if num_items is not None else 1)
            if not last:
                self._call("on_substep_end")
        if a.world_size > 1:
            torch.distributed.all_reduce(total)
            if num_items is None:
                total /= a.world_size
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.requires_grad]
        grad_norm = _grad_norm(params, a.max_grad_norm)
        if a.stop_on_nan_inf:
            self._guard(total, grad_norm)
        self._call("on_pre_optimizer_step")
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            stepped = self.scaler.get_scale() >= scale  # a skipped step (overflow) lowers the scale
        else:
            self.optimizer.step()
            stepped = True
        self._call("on_optimizer_step")
        learning_rate = self.lr_scheduler.get_last_lr()[0]
        if stepped:
            self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.global_step += 1
        return {"loss": total, "grad_norm": grad_norm, "learning_rate": learning_rate}

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

    # ---- the loop -------------------------------------------------------------------------------------------

    def train(self, resume_from_checkpoint: str | os.PathLike[str] | bool | None = None) -> TrainerState:
        """Run the loop for ``max_steps`` (or ``num_train_epochs``), logging, evaluating and saving on
        schedule; with ``resume_from_checkpoint`` (a folder, or True for the newest in output_dir) continue
        that run exactly.

        A run that would do nothing (no data, zero steps) is refused before the first step, and an OS failure
        while saving (disk full, permission) is an :class:`~xf_core.errors.XfOSError` naming the path."""
        try:
            return self._train(resume_from_checkpoint)
        except OSError as e:
            if isinstance(e, XfError):
                raise
            raise os_error(e, e.filename or self.args.output_dir, "Trainer.train(): using") from e  # type: ignore[arg-type]
        finally:
            for callback in self.callback_handler.callbacks:
                if isinstance(callback, ProgressCallback):
                    callback.close()

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
            raise TrainingArgumentsError(
                f"TrainingArguments.fsdp={a.fsdp!r}: xf-train's Trainer does not shard; use xf-parallel's "
                "trainer for FSDP, or leave fsdp unset for data parallelism (torchrun) or one device.",
                key="fsdp",
            )

    def _prepare_model(self) -> None:
        """Gradient checkpointing, torch.compile and the DDP wrapper, in that order (torchtitan's)."""
        a = self.args
        self._compiled = None
        if a.gradient_checkpointing:
            enable = getattr(self.model, "gradient_checkpointing_enable", None)
            if enable is None:
                raise TrainingArgumentsError(
                    f"TrainingArguments.gradient_checkpointing=True but {type(self.model).__name__} has no "
                    "gradient_checkpointing_enable(); use an xf-load model or set gradient_checkpointing=False.",
                    key="gradient_checkpointing",
                )
            enable(gradient_checkpointing_kwargs=a.gradient_checkpointing_kwargs)
        if a.world_size > 1 and not isinstance(self.model_wrapped, nn.parallel.DistributedDataParallel):
            if not torch.distributed.is_initialized():
                backend = a.ddp_backend or ("nccl" if torch.cuda.is_available() and not a.use_cpu else "gloo")
                torch.distributed.init_process_group(
                    backend, timeout=__import__("datetime").timedelta(seconds=a.ddp_timeout)
                )
            kwargs: dict[str, Any] = {
                k: v
                for k, v in (
                    ("find_unused_parameters", a.ddp_find_unused_parameters),
                    ("bucket_cap_mb", a.ddp_bucket_cap_mb),
                    ("broadcast_buffers", a.ddp_broadcast_buffers),
                )
                if v is not None
            }
            self.model_wrapped = nn.parallel.DistributedDataParallel(self.model, **kwargs)
        if a.torch_compile:
            self._compiled = torch.compile(self.model_wrapped, mode=a.torch_compile_mode)
        if a.fp16 and self.scaler is None:
            self.scaler = torch.amp.GradScaler(self._device().type)

    def _train(self, resume_from_checkpoint: str | os.PathLike[str] | bool | None) -> TrainerState:
        a = self.args
        self._check_run()
        loader = self.get_train_dataloader()
        sampler = loader.batch_sampler if isinstance(loader.batch_sampler, EpochBatchSampler) else None
        ga = a.gradient_accumulation_steps
        if sampler is not None:
            per_epoch = max(1, math.ceil(len(sampler) / ga))
            max_steps = a.max_steps if a.max_steps > 0 else math.ceil(a.num_train_epochs * per_epoch)
            num_epochs = math.ceil(max_steps / per_epoch)
        else:  # a stream: an "epoch" is one pass over it, or max_steps steps (as transformers)
            per_epoch, max_steps, num_epochs = a.max_steps, a.max_steps, sys.maxsize
        self._prepare_model()
        self.create_optimizer_and_scheduler(max_steps)
        self.callback_handler.references.update(model=self.model, train_dataloader=loader)
        self.state: TrainerState = TrainerState(
            max_steps=max_steps,
            num_train_epochs=num_epochs if sampler is not None else 0,
            train_batch_size=a.per_device_train_batch_size,
            logging_steps=a.steps_for(a.logging_steps, max_steps),
            eval_steps=a.steps_for(a.eval_steps, max_steps) if a.eval_steps is not None else 500,
            save_steps=a.steps_for(a.save_steps, max_steps),
            is_world_process_zero=a.process_index == 0,
            is_local_process_zero=self.state.is_local_process_zero,
        )
        resume = resume_from_checkpoint if resume_from_checkpoint is not None else a.resume_from_checkpoint
        if resume:
            self._load_checkpoint(self._find_checkpoint(resume))
        if a.debug == "underflow_overflow":
            from xf_train._debug import DebugUnderflowOverflow

            DebugUnderflowOverflow(self.model)  # hooks stay for the life of the model, as in transformers
        self._start, start_step = time.perf_counter(), self.state.global_step
        self._tokens = 0
        self._tr_loss = torch.zeros((), device=self._device())
        self._total_loss, self._last_logged = 0.0, self.state.global_step
        self._last_log_time, self._last_log_tokens = self._start, 0
        self.control: TrainerControl = TrainerControl()
        self._call("on_train_begin")
        if a.eval_on_start:
            self.evaluate()
        for epoch in range(self.state.global_step // per_epoch, num_epochs):
            self.control._new_epoch()
            self._call("on_epoch_begin")
            skip = (self.state.global_step - epoch * per_epoch) * ga
            steps_in_epoch = self._run_epoch(loader, sampler, epoch, skip, per_epoch)
            if steps_in_epoch == 0 and sampler is None:
                logger.warning(
                    "the train stream ended with no batch at step %d of %d; stopping",
                    self.state.global_step,
                    max_steps,
                )
                self.control.should_training_stop = True
            self._call("on_epoch_end")
            self._maybe_log_save_evaluate()
            if self.control.should_training_stop or self.state.global_step >= max_steps:
                break
        return self._finish(start_step)

    def _windows(self, loader: Any, skip: int) -> Iterator[list[dict[str, Any]]]:
        """The accumulation windows of one pass over ``loader`` (the last may be short); a stream's first
        ``skip`` batches are read and dropped (a map-style sampler skips them itself)."""
        ga = self.args.gradient_accumulation_steps
        window: list[dict[str, Any]] = []
        for batch in loader:
            if skip > 0:
                skip -= 1
                continue
            window.append(batch)
            if len(window) == ga:
                yield window
                window = []
        if window:
            yield window

    def _run_epoch(
        self, loader: Any, sampler: EpochBatchSampler | None, epoch: int, skip: int, per_epoch: int
    ) -> int:
        a = self.args
        if sampler is not None:
            sampler.set_epoch(epoch, skip)
            loader.generator.manual_seed((a.data_seed if a.data_seed is not None else a.seed) + epoch)
        steps = 0
        for window in self._windows(loader, 0 if sampler is not None else skip):
            logs = self.train_step(window)
            steps += 1
            step = self.state.global_step
            self.state.epoch = epoch + (step - epoch * per_epoch) / per_epoch
            self._tr_loss += logs["loss"]
            if a.include_num_input_tokens_seen != "no":
                self.state.num_input_tokens_seen = int(self._initial_tokens() + self._tokens)
            self._call("on_step_end")
            self._maybe_log_save_evaluate(logs["grad_norm"], logs["learning_rate"])
            for callback in self.callback_handler.callbacks:
                if isinstance(callback, FunctionCallback):
                    callback.after_step(logs)
            if self.control.should_epoch_stop or self.control.should_training_stop:
                break
            if step >= self.state.max_steps:
                break
        return steps

    def _initial_tokens(self) -> int:
        return getattr(self, "_resumed_tokens", 0)

    def _maybe_log_save_evaluate(
        self, grad_norm: torch.Tensor | None = None, learning_rate: float | None = None
    ) -> None:
        a = self.args
        if self.control.should_log and self.state.global_step > self._last_logged:
            steps = self.state.global_step - self._last_logged
            loss = self._tr_loss.item()
            self._tr_loss.zero_()
            self._total_loss += loss
            now = time.perf_counter()
            tokens = int(self._tokens) * a.world_size
            logs: dict[str, float] = {"loss": loss / steps}
            if grad_norm is not None:
                logs["grad_norm"] = grad_norm.item()
            logs["learning_rate"] = (
                learning_rate if learning_rate is not None else float(self.lr_scheduler.get_last_lr()[0])  # type: ignore[union-attr]
            )
            logs["tokens_per_second"] = round(
                (tokens - self._last_log_tokens) / max(now - self._last_log_time, 1e-9), 2
            )
            self._last_logged, self._last_log_time, self._last_log_tokens = (
                self.state.global_step,
                now,
                tokens,
            )
            self.log(logs)
        if self.control.should_evaluate:
            metrics = self.evaluate()
            new_best = self._determine_best_metric(metrics)
            if a.save_strategy == "best":
                self.control.should_save = new_best
        if self.control.should_save:
            checkpoint = self.save_checkpoint()
            self._call("on_save", checkpoint=str(checkpoint))
            self.control.should_save = False

    def _determine_best_metric(self, metrics: dict[str, float]) -> bool:
        name = self.args.metric_for_best_model
        if name is None:
            return False
        key = name if name.startswith("eval_") else f"eval_{name}"
        if key not in metrics:
            raise TrainingArgumentsError(
                f"TrainingArguments.metric_for_best_model={name!r}: the evaluation gave no {key!r} (it gave "
                f"{sorted(metrics)}); pick one of those or return it from compute_metrics.",
                key="metric_for_best_model",
            )
        value, best = metrics[key], self.state.best_metric
        if best is None or (value > best if self.args.greater_is_better else value < best):
            self.state.best_metric, self.state.best_global_step = value, self.state.global_step
            return True
        return False

    def _finish(self, start_step: int) -> TrainerState:
        a = self.args
        self._total_loss += self._tr_loss.item()
        runtime = time.perf_counter() - self._start
        steps_run = max(1, self.state.global_step - start_step)
        self.log(
            {
                "train_runtime": round(runtime, 4),
                "train_steps_per_second": round(steps_run / runtime, 3),
                "train_loss": self._total_loss / steps_run,
            }
        )
        best = self.state.best_model_checkpoint
        if a.load_best_model_at_end and best is not None and Path(best).is_dir():
            from xf_load import load_weights

            logger.info(
                "loading the best model (%s=%s) from %s",
                a.metric_for_best_model,
                self.state.best_metric,
                best,
            )
            load_weights(self.model, best)
        if a.should_save and best is not None and a.save_total_limit == 1:
            for checkpoint in _sorted_checkpoints(Path(a.output_dir)):  # type: ignore[arg-type]
                if checkpoint.resolve() != Path(best).resolve():
                    _remove(checkpoint)
        self._call("on_train_end")
        if a.should_save:
            write_training_curves(self.state.log_history, Path(a.output_dir) / CURVES_NAME)  # type: ignore[arg-type]
        return self.state

    def log(self, logs: dict[str, float]) -> None:
        """Append ``logs`` (with epoch and step) to ``state.log_history`` and tell the callbacks (the JSONL
        and report_to loggers, the progress bar)."""
        logs = {**logs, "epoch": self.state.epoch}
        if self.args.include_num_input_tokens_seen != "no":
            logs["num_input_tokens_seen"] = self.state.num_input_tokens_seen
        self.state.log_history.append({**logs, "step": self.state.global_step})
        logger.info("step %d: %s", self.state.global_step, logs)
        self._call("on_log", logs=logs)
        self.control.should_log = False

    # ---- evaluation -----------------------------------------------------------------------------------------

    def evaluate(self, eval_dataset: Any = None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """Mean loss over the eval set (each batch weighted by its size) as ``eval_loss``, plus
        ``compute_metrics`` (prefixed ``eval_``); logged and passed to ``on_evaluate``."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise TrainingArgumentsError("Trainer.evaluate() needs an eval_dataset.", key="eval_dataset")
        output = self._evaluation_loop(dataset, metric_key_prefix, what="evaluate")
        self.log(output.metrics)
        self._call("on_evaluate", metrics=output.metrics)
        self.control.should_evaluate = False
        return output.metrics

    def predict(self, test_dataset: Any, metric_key_prefix: str = "test") -> PredictionOutput:
        """Predictions (logits, or what ``preprocess_logits_for_metrics`` makes of them) and labels of every
        row, padded across batches with -100, and the metrics (``test_loss``, ``compute_metrics``)."""
        output = self._evaluation_loop(test_dataset, metric_key_prefix, what="predict")
        self._call("on_predict", metrics=output.metrics)
        return output

    @torch.no_grad()
    def _evaluation_loop(self, dataset: Any, prefix: str, *, what: str) -> PredictionOutput:
        a = self.args
        if is_map_style(dataset) and len(dataset) == 0:
            raise TrainingArgumentsError(
                f"Trainer.{what}() got an empty eval_dataset (0 rows); pass at least one example.",
                key="eval_dataset",
            )
        loader = self.get_eval_dataloader(dataset)
        self.callback_handler.references["eval_dataloader"] = loader
        self.model.eval()
        keep_outputs = not a.prediction_loss_only and (what == "predict" or self.compute_metrics is not None)
        losses: list[torch.Tensor] = []
        host_logits: list[torch.Tensor] = []
        host_labels: list[torch.Tensor] = []
        logits, labels = [], []  # on the device until eval_accumulation_steps batches have gathered
        for index, batch in enumerate(loader):
            batch = self._to_device(batch)
            with self._autocast():
                outputs = self.model(**batch)
            n = next(iter(v for v in batch.values() if isinstance(v, torch.Tensor))).shape[0]
            loss = _field(outputs, "loss")
            if loss is not None:
                losses.append(loss.detach().float().repeat(n).cpu())
            if keep_outputs:
                label = batch.get("labels")
                out = _field(outputs, "logits").detach()
                preprocess = self.preprocess_logits_for_metrics
                if preprocess is not None:
                    out = preprocess(out, label)
                logits.append(out.float() if out.is_floating_point() else out)
                if label is not None:
                    labels.append(label)
            self._call("on_prediction_step")
            if a.eval_accumulation_steps is not None and (index + 1) % a.eval_accumulation_steps == 0:
                host_logits += [t.cpu() for t in logits]
                host_labels += [t.cpu() for t in labels]
                logits, labels = [], []
        host_logits += [t.cpu() for t in logits]
        host_labels += [t.cpu() for t in labels]
        predictions = _concat(host_logits) if host_logits else None
        label_ids = _concat(host_labels) if host_labels else None
        metrics: dict[str, float] = {}
        if losses:
            metrics[f"{prefix}_loss"] = torch.cat(losses).mean().item()
        if self.compute_metrics is not None and predictions is not None:
            computed = self.compute_metrics(EvalPrediction(predictions, label_ids))
            metrics.update(
                {k if k.startswith(f"{prefix}_") else f"{prefix}_{k}": v for k, v in computed.items()}
            )
        return PredictionOutput(predictions, label_ids, metrics)

    # ---- saving ---------------------------------------------------------------------------------------------

    def save_model(self, output_dir: str | os.PathLike[str] | None = None) -> Path:
        """Write the model (``save_pretrained``) and the tokenizer, if any, to ``output_dir``, all or nothing:
        the files are staged beside it and swapped in together (:func:`xf_core.atomic_directory`), so a
        failed save (disk full, permission: an ``XfOSError`` naming the folder) leaves the previous one whole.
        Entries of the folder this save does not write (checkpoints, a README) are kept. Only the main
        process writes."""
        out = Path(output_dir if output_dir is not None else self.args.output_dir)  # type: ignore[arg-type]
        if not self.args.should_save:
            return out
        with atomic_directory(out, keep=_not_written_by_save_model, action="saving the model to") as stage:
            self._write_model(stage)
        return out

    def _write_model(self, folder: Path) -> None:
        save = getattr(self.model, "save_pretrained", None)
        if save is None:
            raise TrainingArgumentsError(
                f"{type(self.model).__name__} has no save_pretrained; save model.state_dict() yourself.",
                key="model",
            )
        save(folder)
        if self.processing_class is not None and hasattr(self.processing_class, "save_pretrained"):
            self.processing_class.save_pretrained(folder)
        (folder / "training_args.json").write_text(self.args.to_json_string() + "\n")

    def create_model_card(
        self,
        *,
        model_name: str | None = None,
        language: str | list[str] | None = None,
        license: str | None = None,
        tags: str | list[str] | None = None,
        finetuned_from: str | None = None,
        dataset: str | list[str] | None = None,
    ) -> Path:
        """Write ``output_dir/README.md``: front matter, hyperparameters, final eval metrics and a table of
        the evaluations during training (transformers' card layout)."""
        from xf_train._modelcard import model_card

        out = Path(self.args.output_dir)  # type: ignore[arg-type]
        text = model_card(
            self,
            model_name=model_name or out.name,
            language=language,
            license=license,
            tags=tags,
            finetuned_from=finetuned_from,
            dataset=dataset,
        )
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "README.md").write_text(text)
        except OSError as e:
            raise os_error(e, out / "README.md", "writing the model card") from e
        return out / "README.md"

    def save_checkpoint(self) -> Path:
        """Write ``output_dir/checkpoint-<step>`` whole: staged beside it and swapped in only when every file
        is written (:func:`xf_core.atomic_directory`), so a failed save (an ``XfOSError`` naming the folder)
        leaves any previous checkpoint intact and resumable. Then drop the oldest checkpoints beyond
        ``save_total_limit``, never the newest nor the best one."""
        root = Path(self.args.output_dir)  # type: ignore[arg-type]
        final = root / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        best_step = self.state.best_global_step
        if best_step is not None:
            best = root / f"{PREFIX_CHECKPOINT_DIR}-{best_step}"
            if best_step == self.state.global_step or best.is_dir():
                self.state.best_model_checkpoint = str(best)
        if not self.args.should_save:
            return final
        self.state.stateful_callbacks = {
            type(c).__name__: c.state()  # pyright: ignore[reportAttributeAccessIssue]  # ExportableState
            for c in self.callback_handler.callbacks
            if callable(getattr(c, "state", None))
        }
        # a checkpoint is replaced whole: nothing of an older folder of the same step is carried over
        with atomic_directory(final, keep=lambda name: False, action="saving the checkpoint") as stage:
            self._write_model(stage)
            if not self.args.save_only_model and self.optimizer is not None and self.lr_scheduler is not None:
                save_training_state(stage, self.optimizer, self.lr_scheduler)
                if self.scaler is not None:
                    (stage / SCALER_NAME).write_text(json.dumps(self.scaler.state_dict()) + "\n")
            self.state.save_to_json(stage / TRAINER_STATE_NAME)
        self._rotate(root)
        return final

    def _rotate(self, root: Path) -> None:
        """transformers' rotation: keep the newest ``save_total_limit`` checkpoints, and always the newest
        and the best (so up to two more than the limit asks when the limit is 1)."""
        limit = self.args.save_total_limit
        if limit is None:
            return
        found = _sorted_checkpoints(root)
        best = self.state.best_model_checkpoint
        protected = {found[-1].name} if found else set()
        if best is not None:
            protected.add(Path(best).name)
        remaining = len(found)
        for old in found:
            if remaining <= max(limit, len(protected)):
                break
            if old.name not in protected:
                _remove(old)
                remaining -= 1

    def _find_checkpoint(self, resume: str | os.PathLike[str] | bool) -> Path:
        if resume is True:
            found = _sorted_checkpoints(Path(self.args.output_dir))  # type: ignore[arg-type]
            if not found:
                raise CheckpointNotFoundError(
                    f"resume_from_checkpoint=True but {self.args.output_dir} has no checkpoint-<step> folder; "
                    "pass a checkpoint path or train without resuming.",
                    path=str(self.args.output_dir),
                )
            return found[-1]
        path = Path(resume)  # type: ignore[arg-type]
        check_interrupted_save(path)  # a save killed between its renames: say where the previous one is
        if not (path / TRAINER_STATE_NAME).is_file():
            raise CheckpointNotFoundError(
                f"{path} is not a checkpoint: it has no {TRAINER_STATE_NAME}. Pass a checkpoint-<step> folder "
                "written by Trainer.save_checkpoint.",
                path=str(path),
                filename=TRAINER_STATE_NAME,
            )
        return path

    def _load_checkpoint(self, path: Path) -> None:
        from xf_load import load_weights

        assert self.optimizer is not None and self.lr_scheduler is not None
        check_training_state(path)
        load_weights(self.model, path)  # raises CheckpointMismatchError naming the keys and the folder
        load_optimizer_state(path, self.optimizer)
        load_scheduler_state(path, self.lr_scheduler)
        if self.scaler is not None and (path / SCALER_NAME).is_file():
            self.scaler.load_state_dict(json.loads((path / SCALER_NAME).read_text()))
        load_rng_state(path)
        saved = TrainerState.load_from_json(path / TRAINER_STATE_NAME)
        for name in (
            "global_step",
            "epoch",
            "log_history",
            "best_metric",
            "best_global_step",
            "best_model_checkpoint",
            "num_input_tokens_seen",
        ):
            setattr(self.state, name, getattr(saved, name))
        self._resumed_tokens = saved.num_input_tokens_seen
        for callback in self.callback_handler.callbacks:
            attributes = saved.stateful_callbacks.get(type(callback).__name__, {}).get("attributes", {})
            for key, value in attributes.items():
                setattr(callback, key, value)
        if self.args.should_save:  # the log restarts from what this checkpoint had seen
            logs = "".join(json.dumps(e) + "\n" for e in self.state.log_history)
            target = Path(self.args.output_dir) / LOGS_NAME  # type: ignore[arg-type]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(logs)
        logger.info("resumed from %s at step %d", path, saved.global_step)


def _check_output_dir(output_dir: str) -> None:
    """Refuse an ``output_dir`` that no save could write: a file in its place or on its path, or a nearest
    existing directory without write permission. Nothing is created here."""
    path = Path(output_dir).absolute()
    if path.exists() and not path.is_dir():
        raise OutputDirError(
            f"TrainingArguments.output_dir={output_dir!r} is a file, not a directory; remove it or choose "
            "another output_dir.",
            path=str(path),
            errno_=errno.ENOTDIR,
        )
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputDirError(
            f"TrainingArguments.output_dir={output_dir!r} cannot be created: {existing} on its path is a file, "
            "not a directory; remove it or choose another output_dir.",
            path=str(path),
            errno_=errno.ENOTDIR,
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "it" if existing == path else f"{existing}, where it would be created,"
        raise OutputDirError(
            f"TrainingArguments.output_dir={output_dir!r} is not writable: {where} denies write permission; "
            "choose a directory you can write to or fix its permissions.",
            path=str(path),
            errno_=errno.EACCES,
        )


def _not_written_by_save_model(name: str) -> bool:
    """Entries of a folder that :meth:`Trainer.save_model` carries over: everything but the config, the
    weights (single, sharded, index) and training_args.json, so two saves never mix their weights."""
    owned = name in ("config.json", "generation_config.json", "training_args.json")
    weights = name.startswith(("model.", "model-", "pytorch_model")) and (
        name.endswith((".safetensors", ".bin", ".index.json"))
    )
    return not (owned or weights)


def _field(outputs: Any, name: str) -> Any:
    """``outputs.name`` of a model output (dataclass or dict); None when absent."""
    return outputs.get(name) if isinstance(outputs, dict) else getattr(outputs, name, None)


def _due(strategy: str, every: int, step: int, end_of_epoch: bool) -> bool:
    """Whether a "steps"/"epoch" strategy fires at ``step`` ("no" never does)."""
    return (strategy == "steps" and step % every == 0) or (strategy == "epoch" and end_of_epoch)


def _sorted_checkpoints(root: Path) -> list[Path]:
    found = [
        p for p in root.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p.is_dir() and p.name.split("-")[-1].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def _concat(parts: list[torch.Tensor]) -> torch.Tensor:
    """Concatenate along the batch; rows of other lengths are padded with -100 on the right."""
    if parts[0].dim() < 2:
        return torch.cat(parts)
    width = max(p.shape[1] for p in parts)
    padded = [
        torch.nn.functional.pad(p, (0, 0) * (p.dim() - 2) + (0, width - p.shape[1]), value=-100)
        for p in parts
    ]
    return torch.cat(padded)


def _remove(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except OSError as e:
        raise os_error(e, folder, "removing the old checkpoint (save_total_limit)") from e


def _grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """The total gradient norm, clipped to ``max_norm`` when it is > 0."""
    if max_norm > 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def _smoothed_loss(
    logits: torch.Tensor, labels: torch.Tensor, epsilon: float, *, shift: bool, num_items: torch.Tensor | None
) -> torch.Tensor:
    """transformers' LabelSmoother: ``(1 - eps) * nll + eps * mean(-log p over the vocabulary)`` over the
    targets that are not -100, divided by ``num_items`` (the targets of the whole accumulated step) when
    given, else by this batch's targets."""
    if shift:
        logits, labels = logits[..., :-1, :], labels[..., 1:]
    log_probs = -torch.nn.functional.log_softmax(logits.float(), dim=-1)
    labels = labels.unsqueeze(-1)
    padding = labels.eq(-100)
    nll = log_probs.gather(dim=-1, index=labels.clamp(min=0)).masked_fill(padding, 0.0)
    smoothed = log_probs.sum(dim=-1, keepdim=True).masked_fill(padding, 0.0)
    count = num_items if num_items is not None else padding.numel() - padding.long().sum()
    return (1 - epsilon) * nll.sum() / count + epsilon * smoothed.sum() / (count * log_probs.shape[-1])
