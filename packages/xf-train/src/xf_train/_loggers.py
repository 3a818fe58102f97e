"""Where the Trainer's logs go: ``output_dir/logs.jsonl`` always, TensorBoard when asked for, and a
loss/learning-rate plot (``output_dir/training_curves.png``) at the end of training.

Only the main process writes. ``logs.jsonl`` holds one JSON object per ``Trainer.log`` call (with ``step``
and ``epoch``), appended and flushed as it happens, so a killed run keeps every log up to the kill.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

from xf_core import os_error
from xf_core.logging import get_logger
from xf_train._callbacks import TrainerCallback, TrainerControl, TrainerState

__all__ = ["CURVES_NAME", "LOGS_NAME", "JsonlLoggerCallback", "TensorBoardCallback", "write_training_curves"]

logger = get_logger(__name__)

LOGS_NAME = "logs.jsonl"
CURVES_NAME = "training_curves.png"


class JsonlLoggerCallback(TrainerCallback):
    """Append every log to ``output_dir/logs.jsonl``."""

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        path = Path(args.output_dir) / LOGS_NAME
        entry = {**kwargs["logs"], "step": state.global_step}  # as the entry of state.log_history
        line = json.dumps({k: _plain(v) for k, v in entry.items()}, allow_nan=True)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write(line + "\n")
        except OSError as e:
            raise os_error(e, path, "writing the training log") from e


class TensorBoardCallback(TrainerCallback):
    """Scalars of every log to TensorBoard event files in ``output_dir/runs`` (needs ``tensorboard``)."""

    def __init__(self) -> None:
        self.writer: Any = None

    def _open(self, args: Any) -> None:
        if self.writer is None:
            import tensorboard  # noqa: F401  # what torch's SummaryWriter needs (the xf-train[tensorboard] extra)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(Path(args.output_dir) / "runs"))

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self._open(args)
        for key, value in kwargs["logs"].items():
            if isinstance(value, (int, float)):
                name = key[len("eval_") :] if key.startswith("eval_") else key
                prefix = "eval" if key.startswith("eval_") else "train"
                self.writer.add_scalar(f"{prefix}/{name}", value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


REPORTER_CALLBACKS: dict[str, type[TrainerCallback]] = {"tensorboard": TensorBoardCallback}


def write_training_curves(log_history: list[dict[str, float]], path: Path) -> Path | None:
    """Plot the training loss and the learning rate against the step into ``path`` (PNG). Without
    matplotlib, or without any training log, nothing is written (a log line says so) and None is returned."""
    steps = [e for e in log_history if "loss" in e and "step" in e]
    if not steps:
        logger.info("no training loss was logged, so %s is not written", path.name)
        return None
    if importlib.util.find_spec("matplotlib") is None:
        logger.info("matplotlib is not installed, so %s is not written (pip install matplotlib)", path.name)
        return None
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    figure = Figure(figsize=(9, 3.5), dpi=100)
    loss_axes, lr_axes = figure.subplots(1, 2)
    x = [e["step"] for e in steps]
    loss_axes.plot(x, [e["loss"] for e in steps], label="train")
    evals = [e for e in log_history if "eval_loss" in e]
    if evals:
        loss_axes.plot([e["step"] for e in evals], [e["eval_loss"] for e in evals], "o-", label="eval")
    loss_axes.set(xlabel="step", ylabel="loss", title="loss")
    loss_axes.legend()
    lr_axes.plot(x, [e.get("learning_rate", math.nan) for e in steps])
    lr_axes.set(xlabel="step", ylabel="learning rate", title="learning rate")
    figure.tight_layout()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png")
    except OSError as e:
        raise os_error(e, path, "writing the training curves") from e
    return path


def _plain(value: Any) -> Any:
    """A JSON-ready value: tensors and numpy scalars become Python numbers."""
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "ndim", 0) == 0 else value
