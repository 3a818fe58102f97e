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
Under ``torchrun`` (``WORLD_SIZE > 1``) the same script runs data parallel: the model is wrapped in torch's
``DistributedDataParallel`` (or sharded with FSDP2 for ``fsdp="full_shard"``), each process reads its share of
every batch, the loss is normalised by the targets of the whole global batch, the logged loss is the mean over
processes, and only process 0 writes. A model loaded tensor parallel over every process (``tp_plan="auto",
device_mesh=...``) trains as it is, each process reading the whole batch. Sharded models (FSDP, TP) are
checkpointed and resumed with xf-parallel's distributed checkpoints (:mod:`xf_train._trainer_dist`).

What the model is comes from xf-load's public API: its head kind (:func:`xf_load.head_kind_of`) decides
label shifting (a causal-LM head predicts token t+1 at position t, so the first label is never a target), and
resuming reads the weights with :func:`xf_load.load_weights` (sharded or single file, tied weights stored
once, mismatches named). A model with no head kind, such as a plain ``nn.Module``, computes its own loss from
``labels``: every label that is not -100 counts as one target.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from xf_core import os_error
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
from xf_train._loggers import CURVES_NAME, REPORTER_CALLBACKS, JsonlLoggerCallback, write_training_curves
from xf_train._optim import create_optimizer, get_scheduler
from xf_train._trainer_checks import TrainerChecksMixin
from xf_train._trainer_ckpt import (
    TrainerCheckpointMixin,
    _check_output_dir,
    _remove,
    _sorted_checkpoints,
)
from xf_train._trainer_dist import (
    data_parallel_dims,
    is_sharded,
    no_sync,
    parallel_support,
    prepare_distributed,
    unfuse_mixed,
)
from xf_train._trainer_eval import EvalPrediction, PredictionOutput, TrainerEvalMixin, _field
from xf_train._trainer_loss import _grad_norm, _smoothed_loss
from xf_train._training_args import TrainingArguments
from xf_train.errors import TrainingArgumentsError

__all__ = ["EvalPrediction", "PredictionOutput", "Trainer", "TrainerState"]

logger = get_logger(__name__)

Callback = Callable[[str, "Trainer", dict[str, Any]], None]


class Trainer(TrainerEvalMixin, TrainerCheckpointMixin, TrainerChecksMixin):
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
        self.data_collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]] = data_collator
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
        # the data-parallel rank and degree: every process, except that a tensor-parallel model's share a batch
        self._dp_rank, self._dp_size = data_parallel_dims(model, self.args)
        self._sharded = is_sharded(model)
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
                rank=self._dp_rank,
                world_size=self._dp_size,
            )
        elif not isinstance(dataset, torch.utils.data.IterableDataset):
            dataset = Stream(dataset)
        collate = ColumnCollate(self.data_collator, self._keep_columns())
        return make_loader(
            dataset, batch_size=a.per_device_train_batch_size, collate=collate, args=a, batch_sampler=sampler
        )

    def num_batches_per_epoch(self) -> int:
        n, bs = len(self.train_dataset), self.args.per_device_train_batch_size  # type: ignore[arg-type]
        n = math.ceil(n / self._dp_size)
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
        if self._sharded:
            unfuse_mixed(self.model, self.optimizer)
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
        if self._dp_size > 1:  # every process divides by the targets of the whole global batch
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
        a, dp = self.args, self._dp_size
        self.model_wrapped.train()
        self._call("on_step_begin")
        num_items = self._count_items(micro_batches)
        total = torch.zeros((), device=self._device())
        for i, batch in enumerate(micro_batches):
            self._tokens += self._count_tokens(batch)
            last = i == len(micro_batches) - 1
            with no_sync(self.model_wrapped, skip=not last and dp > 1):
                loss = self._loss(self._to_device(batch), num_items)
                if num_items is None:
                    loss = loss / len(micro_batches)
                elif dp > 1:
                    loss = loss * dp  # DDP and FSDP average the gradients: undo it for a global-token mean
                (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
            total += loss.detach() / (dp if num_items is not None else 1)
            if not last:
                self._call("on_substep_end")
        if dp > 1:
            torch.distributed.all_reduce(total)
            if num_items is None:
                total /= dp
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self._sharded:  # DTensor gradients: their norm is reduced over the mesh
            clip = parallel_support("training a sharded (FSDP or tensor-parallel) model").clip_grad_norm_
            grad_norm = clip(params, a.max_grad_norm if a.max_grad_norm > 0 else math.inf)
        else:
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

    def _prepare_model(self) -> None:
        """Gradient checkpointing, the distributed wrapper (DDP, FSDP) and torch.compile, in that order
        (torchtitan's)."""
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
        self.model_wrapped = prepare_distributed(self.model, self.model_wrapped, a)
        self._sharded = is_sharded(self.model)
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
            tokens = int(self._tokens) * self._dp_size
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
