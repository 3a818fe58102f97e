"""``Trainer``: transformers' Trainer workflow as one explicit loop.

``train_step`` reads top to bottom: zero_grad -> micro-batches (forward, backward) -> clip -> optimizer
step -> schedule -> log. With labels and a model whose forward takes ``num_items_in_batch``, each
micro-batch loss is a sum divided by the number of target tokens of the whole accumulated step (as
transformers), so gradient accumulation equals one big batch. Everything needed to resume is written to
``checkpoint-<step>/`` atomically: weights (``save_pretrained``), optimizer, scheduler, RNG states and
``trainer_state.json``. The data order of epoch ``e`` is a permutation drawn from ``data_seed + e`` (or
sequential), so resuming skips exactly the batches already seen.

What the model is comes from xf-load's public API: its head kind (:func:`xf_load.head_kind_of`) decides
label shifting (a causal-LM head predicts token t+1 at position t, so the first label is never a target), and
resuming reads the weights with :func:`xf_load.load_weights` (sharded or single file, tied weights stored
once, mismatches named). A model with no head kind, such as a plain ``nn.Module``, computes its own loss from
``labels``: every label that is not -100 counts as one target.
"""

from __future__ import annotations

import errno
import inspect
import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from xf_core import atomic_directory, check_interrupted_save, os_error
from xf_core.errors import XfError
from xf_core.logging import get_logger, progress_bar
from xf_load.heads import HeadKind, head_kind_of
from xf_train._collators import DataCollatorWithPadding, default_data_collator
from xf_train._optim import create_optimizer, get_scheduler
from xf_train._state_io import (
    check_training_state,
    load_optimizer_state,
    load_rng_state,
    load_scheduler_state,
    save_training_state,
)
from xf_train._training_args import TrainingArguments
from xf_train.errors import CheckpointNotFoundError, OutputDirError, TrainingArgumentsError

__all__ = ["EvalPrediction", "Trainer", "TrainerState"]

logger = get_logger(__name__)

PREFIX_CHECKPOINT_DIR = "checkpoint"
TRAINER_STATE_NAME = "trainer_state.json"
Callback = Callable[[str, "Trainer", dict[str, Any]], None]


class EvalPrediction(NamedTuple):
    """What ``compute_metrics`` receives: all eval logits and labels, padded across batches with -100."""

    predictions: torch.Tensor
    label_ids: torch.Tensor | None


@dataclass
class TrainerState:
    """Progress of a run, saved as trainer_state.json (transformers' keys)."""

    global_step: int = 0
    max_steps: int = 0
    epoch: float = 0.0
    num_train_epochs: int = 0
    train_batch_size: int = 0
    log_history: list[dict[str, float]] = field(default_factory=list)

    def save_to_json(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_from_json(cls, path: str | os.PathLike[str]) -> TrainerState:
        data = json.loads(Path(path).read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Trainer:
    """Train and evaluate an xf-load (or any ``nn.Module`` returning ``.loss``) model."""

    def __init__(
        self,
        model: nn.Module,
        args: TrainingArguments | None = None,
        *,
        train_dataset: Sequence[dict[str, Any]] | None = None,
        eval_dataset: Sequence[dict[str, Any]] | None = None,
        data_collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]] | None = None,
        processing_class: Any = None,
        compute_metrics: Callable[[EvalPrediction], dict[str, float]] | None = None,
        callbacks: Sequence[Callback] = (),
        optimizers: tuple[torch.optim.Optimizer | None, torch.optim.lr_scheduler.LRScheduler | None] = (
            None,
            None,
        ),
    ) -> None:
        self.args = args if args is not None else TrainingArguments()
        _check_output_dir(self.args.output_dir)  # type: ignore[arg-type]  # as transformers: at init, not at the first save
        self.model = model
        self.train_dataset = train_dataset
        self.eval_dataset = eval_dataset
        self.processing_class = processing_class
        if data_collator is None:
            pads = processing_class is not None and hasattr(processing_class, "pad")
            data_collator = DataCollatorWithPadding(processing_class) if pads else default_data_collator
        self.data_collator = data_collator
        self.compute_metrics = compute_metrics
        self.callbacks = list(callbacks)
        self.optimizer, self.lr_scheduler = optimizers
        self.state = TrainerState()
        signature = inspect.signature(model.forward).parameters
        self._forward_args = set(signature)
        # Only a forward that names num_items_in_batch normalises by it. transformers also passes it to any
        # forward with **kwargs, so a mean loss that ignores it (BERT heads) is not divided by the
        # accumulation steps there: its gradients grow with gradient_accumulation_steps. Here they do not.
        self._accepts_num_items = "num_items_in_batch" in signature
        # A causal-LM head shifts labels: position 0 of the labels is never a target, so it is not counted.
        self._shifts_labels = head_kind_of(model) == HeadKind.CAUSAL_LM
        self._bar: Any = None
        torch.manual_seed(self.args.seed)
        random.seed(self.args.seed)

    # ---- data -----------------------------------------------------------------------------------------------

    def _columns(self, example: dict[str, Any]) -> dict[str, Any]:
        if not self.args.remove_unused_columns:
            return example
        keep = self._forward_args | {"label", "label_ids", "labels", *(self.args.label_names or [])}
        return {k: v for k, v in example.items() if k in keep}

    def _batches(self, dataset: Sequence[dict[str, Any]], batch_size: int, order: list[int], drop_last: bool):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            if drop_last and len(rows) < batch_size:
                return
            yield self.data_collator([self._columns(dataset[i]) for i in rows])

    def _epoch_order(self, epoch: int) -> list[int]:
        n = len(self.train_dataset)  # type: ignore[arg-type]
        if self.args.train_sampling_strategy == "sequential":
            return list(range(n))
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()

    def num_batches_per_epoch(self) -> int:
        n, bs = len(self.train_dataset), self.args.per_device_train_batch_size  # type: ignore[arg-type]
        return n // bs if self.args.dataloader_drop_last else math.ceil(n / bs)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        device = self._device()
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}

    # ---- optimizer ------------------------------------------------------------------------------------------

    def create_optimizer_and_scheduler(self, num_training_steps: int) -> None:
        a = self.args
        if self.optimizer is None:
            fused = a.optim == "adamw_torch_fused"
            self.optimizer = create_optimizer(
                self.model,
                lr=a.learning_rate,
                weight_decay=a.weight_decay,
                betas=(a.adam_beta1, a.adam_beta2),
                eps=a.adam_epsilon,
                fused=fused,
            )
        if self.lr_scheduler is None:
            self.lr_scheduler = get_scheduler(
                a.lr_scheduler_type,
                self.optimizer,
                num_warmup_steps=a.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
            )

    # ---- the loop -------------------------------------------------------------------------------------------

    def _loss(self, batch: dict[str, Any], num_items_in_batch: torch.Tensor | None) -> torch.Tensor:
        if num_items_in_batch is not None:
            batch = {**batch, "num_items_in_batch": num_items_in_batch}
        with torch.autocast(self._device().type, dtype=torch.bfloat16, enabled=self.args.bf16):
            outputs = self.model(**batch)
        loss = _field(outputs, "loss")
        if loss is None:
            raise TrainingArgumentsError(
                f"{type(self.model).__name__} returned no loss: the batches have keys {sorted(batch)} but no "
                "'labels'. Use a collator that makes labels (e.g. DataCollatorForLanguageModeling) or add them.",
                key="labels",
            )
        return loss

    def _count_items(self, micro_batches: list[dict[str, Any]]) -> torch.Tensor | None:
        if not self._accepts_num_items or "labels" not in micro_batches[0]:
            return None
        labels = [b["labels"][..., 1:] if self._shifts_labels else b["labels"] for b in micro_batches]
        return sum(lab.ne(-100).sum() for lab in labels).to(self._device())  # type: ignore[union-attr]

    def train_step(self, micro_batches: list[dict[str, Any]]) -> dict[str, float]:
        """One optimizer step over ``micro_batches`` (one accumulation window); returns its logs."""
        if self.optimizer is None or self.lr_scheduler is None:
            raise TrainingArgumentsError(
                "train_step() needs an optimizer and a scheduler: call "
                "create_optimizer_and_scheduler(num_training_steps) first (train() does).",
                key="optimizers",
            )
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        num_items = self._count_items(micro_batches)
        total = torch.zeros((), device=self._device())
        for batch in micro_batches:
            loss = self._loss(self._to_device(batch), num_items)
            if num_items is None:
                loss = loss / len(micro_batches)
            loss.backward()
            total += loss.detach()
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.args.max_grad_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.args.max_grad_norm)
        else:
            grads = [p.grad.norm() for p in params if p.grad is not None]
            grad_norm = torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros(())
        self.optimizer.step()
        learning_rate = self.lr_scheduler.get_last_lr()[0]
        self.lr_scheduler.step()
        self.state.global_step += 1
        return {"loss": total.item(), "grad_norm": grad_norm.item(), "learning_rate": learning_rate}

    def _windows(self, epoch: int, skip: int) -> Iterator[list[dict[str, Any]]]:
        """The accumulation windows of ``epoch`` after the first ``skip`` (the last window may be short)."""
        ga = self.args.gradient_accumulation_steps
        batches = self._batches(
            self.train_dataset,  # type: ignore[arg-type]
            self.args.per_device_train_batch_size,
            self._epoch_order(epoch),
            self.args.dataloader_drop_last,
        )
        window: list[dict[str, Any]] = []
        index = 0
        for batch in batches:
            window.append(batch)
            if len(window) == ga:
                if index >= skip:
                    yield window
                index, window = index + 1, []
        if window and index >= skip:
            yield window

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
            if self._bar is not None:
                self._bar.close()
                self._bar = None

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
        if len(self.train_dataset) == 0:
            raise TrainingArgumentsError(
                "train_dataset is empty (0 rows), so there is nothing to train on; pass a dataset with at "
                "least one example.",
                key="train_dataset",
            )
        if self.num_batches_per_epoch() == 0:
            raise TrainingArgumentsError(
                f"train_dataset has {len(self.train_dataset)} rows, fewer than per_device_train_batch_size="
                f"{a.per_device_train_batch_size}, and dataloader_drop_last=True drops that only batch, so no "
                "step would run; lower the batch size or set dataloader_drop_last=False.",
                key="dataloader_drop_last",
            )
        if a.max_steps == 0:
            raise TrainingArgumentsError(
                "TrainingArguments.max_steps=0 runs no step; pass max_steps > 0, or -1 to train for "
                "num_train_epochs.",
                key="max_steps",
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
        if a.eval_strategy != "no" and len(self.eval_dataset) == 0:  # type: ignore[arg-type]
            raise TrainingArgumentsError(
                f"eval_strategy={a.eval_strategy!r} but eval_dataset is empty (0 rows), so no evaluation could "
                "give a result; pass an eval_dataset with at least one example or set eval_strategy='no'.",
                key="eval_dataset",
            )

    def _train(self, resume_from_checkpoint: str | os.PathLike[str] | bool | None) -> TrainerState:
        a = self.args
        self._check_run()
        per_epoch = max(1, math.ceil(self.num_batches_per_epoch() / a.gradient_accumulation_steps))
        max_steps = a.max_steps if a.max_steps > 0 else math.ceil(a.num_train_epochs * per_epoch)
        num_epochs = math.ceil(max_steps / per_epoch)
        self.create_optimizer_and_scheduler(max_steps)
        self.state = TrainerState(
            max_steps=max_steps, num_train_epochs=num_epochs, train_batch_size=a.per_device_train_batch_size
        )
        resume = resume_from_checkpoint if resume_from_checkpoint is not None else a.resume_from_checkpoint
        if resume:
            self._load_checkpoint(self._find_checkpoint(resume))
        log_every = a.steps_for(a.logging_steps, max_steps)
        save_every = a.steps_for(a.save_steps, max_steps)
        eval_every = a.steps_for(a.eval_steps, max_steps) if a.eval_steps is not None else 0
        if a.debug == "underflow_overflow":
            from xf_train._debug import DebugUnderflowOverflow

            DebugUnderflowOverflow(self.model)  # hooks stay for the life of the model, as in transformers
        start = time.perf_counter()
        start_step = self.state.global_step
        window_loss, window_steps, run_loss = 0.0, 0, 0.0
        self._bar = progress_bar(total=max_steps, initial=start_step, desc="train", disable=a.disable_tqdm)
        for epoch in range(self.state.global_step // per_epoch, num_epochs):
            skip = self.state.global_step - epoch * per_epoch
            for window in self._windows(epoch, skip):
                logs = self.train_step(window)
                step = self.state.global_step
                self.state.epoch = epoch + (step - epoch * per_epoch) / per_epoch
                self._bar.update(1)
                window_loss, window_steps, run_loss = (
                    window_loss + logs["loss"],
                    window_steps + 1,
                    run_loss + logs["loss"],
                )
                end_of_epoch, last = step == (epoch + 1) * per_epoch or step == max_steps, step >= max_steps
                if _due(a.logging_strategy, log_every, step, end_of_epoch) or (
                    step == 1 and a.logging_first_step
                ):
                    self.log({**logs, "loss": window_loss / window_steps})
                    window_loss, window_steps = 0.0, 0
                # like transformers, a step-based run also evaluates and saves at its last step
                if _due(a.eval_strategy, eval_every, step, end_of_epoch) or (
                    last and a.eval_strategy == "steps"
                ):
                    self.evaluate()
                if _due(a.save_strategy, save_every, step, end_of_epoch) or (
                    last and a.save_strategy == "steps"
                ):
                    self.save_checkpoint()
                self._emit("step_end", logs)
                if last:
                    break
            if self.state.global_step >= max_steps:
                break
        self._bar.close()
        self._bar = None
        runtime = time.perf_counter() - start
        steps_run = max(1, self.state.global_step - start_step)
        self.log(
            {
                "train_runtime": round(runtime, 4),
                "train_steps_per_second": round(steps_run / runtime, 3),
                "train_loss": run_loss / steps_run,
            }
        )
        return self.state

    def log(self, logs: dict[str, float]) -> None:
        """Append ``logs`` (with epoch and step) to ``state.log_history``, show them, tell the callbacks."""
        entry = {**logs, "epoch": self.state.epoch, "step": self.state.global_step}
        self.state.log_history.append(entry)
        if self._bar is not None and "loss" in logs:
            self._bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
        logger.info("step %d: %s", self.state.global_step, logs)
        self._emit("log", entry)

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        for callback in self.callbacks:
            callback(event, self, payload)

    # ---- evaluation -----------------------------------------------------------------------------------------

    @torch.no_grad()
    def evaluate(self, eval_dataset: Sequence[dict[str, Any]] | None = None) -> dict[str, float]:
        """Mean loss over the eval set (each batch weighted by its size) as ``eval_loss``, plus
        ``compute_metrics`` (prefixed ``eval_``)."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        if dataset is None:
            raise TrainingArgumentsError("Trainer.evaluate() needs an eval_dataset.", key="eval_dataset")
        if len(dataset) == 0:
            raise TrainingArgumentsError(
                "Trainer.evaluate() got an empty eval_dataset (0 rows); pass at least one example.",
                key="eval_dataset",
            )
        self.model.eval()
        bs = self.args.per_device_eval_batch_size
        losses, logits, labels = [], [], []
        for batch in self._batches(dataset, bs, list(range(len(dataset))), drop_last=False):
            batch = self._to_device(batch)
            with torch.autocast(self._device().type, dtype=torch.bfloat16, enabled=self.args.bf16):
                outputs = self.model(**batch)
            n = next(iter(v for v in batch.values() if isinstance(v, torch.Tensor))).shape[0]
            if _field(outputs, "loss") is not None:
                losses.append(_field(outputs, "loss").float().repeat(n))
            if self.compute_metrics is not None:
                logits.append(_field(outputs, "logits").float().cpu())
                labels.append(batch["labels"].cpu() if "labels" in batch else None)
        metrics: dict[str, float] = {}
        if losses:
            metrics["eval_loss"] = torch.cat(losses).mean().item()
        if self.compute_metrics is not None:
            prediction = EvalPrediction(_concat(logits), _concat(labels) if labels[0] is not None else None)
            metrics.update({f"eval_{k}": v for k, v in self.compute_metrics(prediction).items()})
        self.log(metrics)
        self._emit("evaluate", metrics)
        return metrics

    # ---- saving ---------------------------------------------------------------------------------------------

    def save_model(self, output_dir: str | os.PathLike[str] | None = None) -> Path:
        """Write the model (``save_pretrained``) and the tokenizer, if any, to ``output_dir``, all or nothing:
        the files are staged beside it and swapped in together (:func:`xf_core.atomic_directory`), so a
        failed save (disk full, permission: an ``XfOSError`` naming the folder) leaves the previous one whole.
        Entries of the folder this save does not write (checkpoints, a README) are kept."""
        out = Path(output_dir if output_dir is not None else self.args.output_dir)  # type: ignore[arg-type]
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
        ``save_total_limit``."""
        root = Path(self.args.output_dir)  # type: ignore[arg-type]
        final = root / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        # a checkpoint is replaced whole: nothing of an older folder of the same step is carried over
        with atomic_directory(final, keep=lambda name: False, action="saving the checkpoint") as stage:
            self._write_model(stage)
            if not self.args.save_only_model and self.optimizer is not None and self.lr_scheduler is not None:
                save_training_state(stage, self.optimizer, self.lr_scheduler)
            self.state.save_to_json(stage / TRAINER_STATE_NAME)
        self._rotate(root)
        self._emit("save", {"checkpoint": str(final)})
        return final

    def _rotate(self, root: Path) -> None:
        limit = self.args.save_total_limit
        if limit is None:
            return
        for old in _sorted_checkpoints(root)[:-limit]:
            try:
                shutil.rmtree(old)
            except OSError as e:
                raise os_error(e, old, "removing the old checkpoint (save_total_limit)") from e

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
        load_rng_state(path)
        saved = TrainerState.load_from_json(path / TRAINER_STATE_NAME)
        self.state.global_step, self.state.epoch = saved.global_step, saved.epoch
        self.state.log_history = saved.log_history
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
