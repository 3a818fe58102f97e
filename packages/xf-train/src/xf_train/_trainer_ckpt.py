"""The Trainer's saving and resuming: ``save_model``, ``checkpoint-<step>/`` folders written whole (weights,
optimizer, scheduler, scaler, RNG, ``trainer_state.json``), their rotation under ``save_total_limit`` and the
restore of all of it on resume."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from xf_core import atomic_directory, check_interrupted_save, os_error
from xf_core.logging import get_logger
from xf_train._callbacks import TrainerState
from xf_train._loggers import LOGS_NAME
from xf_train._state_io import (
    check_training_state,
    load_optimizer_state,
    load_rng_state,
    load_scheduler_state,
    save_training_state,
)
from xf_train._trainer_dist import parallel_support
from xf_train.errors import CheckpointNotFoundError, OutputDirError, TrainingArgumentsError

if TYPE_CHECKING:
    from xf_train._callbacks import CallbackHandler
    from xf_train._trainer import Trainer
    from xf_train._training_args import TrainingArguments

logger = get_logger("xf_train._trainer")

PREFIX_CHECKPOINT_DIR = "checkpoint"
TRAINER_STATE_NAME = "trainer_state.json"
SCALER_NAME = "scaler.json"


class TrainerCheckpointMixin:
    """Saving, checkpoint rotation and resuming of :class:`~xf_train.Trainer`."""

    args: TrainingArguments
    model: nn.Module
    state: TrainerState
    callback_handler: CallbackHandler
    processing_class: Any
    optimizer: torch.optim.Optimizer | None
    lr_scheduler: torch.optim.lr_scheduler.LRScheduler | None
    scaler: torch.amp.GradScaler | None
    _resumed_tokens: int
    _sharded: bool

    def save_model(self, output_dir: str | os.PathLike[str] | None = None) -> Path:
        """Write the model (``save_pretrained``) and the tokenizer, if any, to ``output_dir``, all or nothing:
        the files are staged beside it and swapped in together (:func:`xf_core.atomic_directory`), so a
        failed save (disk full, permission: an ``XfOSError`` naming the folder) leaves the previous one whole.
        Entries of the folder this save does not write (checkpoints, a README) are kept. Only the main
        process writes. A sharded model (FSDP, tensor parallel) is gathered first, so every process must call
        this; its folder is written in place (xf-parallel's ``export_pretrained``)."""
        out = Path(output_dir if output_dir is not None else self.args.output_dir)  # type: ignore[arg-type]
        if self._sharded:
            parallel_support("saving a sharded (FSDP or tensor-parallel) model").export_pretrained(
                self.model, out
            )
            if self.args.should_save:
                self._write_extras(out)
            return out
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
        self._write_extras(folder)

    def _write_extras(self, folder: Path) -> None:
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
            cast("Trainer", self),
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
        self.state.stateful_callbacks = {
            type(c).__name__: c.state()  # pyright: ignore[reportAttributeAccessIssue]  # ExportableState
            for c in self.callback_handler.callbacks
            if callable(getattr(c, "state", None))
        }
        if self._sharded:
            return self._save_sharded_checkpoint(root, final)
        if not self.args.should_save:
            return final
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

    def _save_sharded_checkpoint(self, root: Path, final: Path) -> Path:
        """Every process writes its shards of the model and optimizer with xf-parallel's ``save_checkpoint``
        (a ``torch.distributed.checkpoint`` folder with a checksummed manifest, swapped into place whole, the
        scheduler in its state); then the main process adds ``trainer_state.json``, which marks it complete."""
        support = parallel_support("checkpointing a sharded (FSDP or tensor-parallel) model")
        scheduler = self.lr_scheduler.state_dict() if self.lr_scheduler is not None else None
        support.save_checkpoint(final, self.model, self.optimizer, scheduler=scheduler)
        if self.args.should_save:
            self.state.save_to_json(final / TRAINER_STATE_NAME)
            self._rotate(root)
        torch.distributed.barrier()
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
        if self._sharded:  # xf-parallel's checkpoint, resharded to this run's processes (verified first)
            support = parallel_support("resuming a sharded (FSDP or tensor-parallel) model")
            self.lr_scheduler.load_state_dict(
                support.load_checkpoint(path, self.model, self.optimizer)["scheduler"]
            )
        else:
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


def _sorted_checkpoints(root: Path) -> list[Path]:
    found = [
        p for p in root.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p.is_dir() and p.name.split("-")[-1].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def _remove(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except OSError as e:
        raise os_error(e, folder, "removing the old checkpoint (save_total_limit)") from e
