"""Where the Trainer's logs go: ``output_dir/logs.jsonl`` always, the ``report_to`` trackers when asked for,
and a loss/learning-rate plot (``output_dir/training_curves.png``) at the end of training.

``report_to="tensorboard"`` writes event files to ``output_dir/runs`` itself; every other name (``wandb``,
``mlflow``, ``comet_ml``, ``aim``, ``clearml``, ``dvclive``, ``trackio``, ``swanlab``, or a tracker registered
with accelerate's ``register_tracker_class``) goes through accelerate's tracker of that name
(:class:`AccelerateTrackerCallback`), configured as that library usually is (``WANDB_PROJECT``,
``MLFLOW_TRACKING_URI``, ...). ``report_to="all"`` means every one of them that is installed.

Only the main process writes. ``logs.jsonl`` holds one JSON object per ``Trainer.log`` call (with ``step``
and ``epoch``), appended and flushed as it happens, so a killed run keeps every log up to the kill.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xf_core import os_error
from xf_core.logging import get_logger
from xf_train._callbacks import TrainerCallback, TrainerControl, TrainerState
from xf_train.errors import TrainingArgumentsError

__all__ = [
    "CURVES_NAME",
    "LOGS_NAME",
    "TRACKER_PACKAGES",
    "AccelerateTrackerCallback",
    "JsonlLoggerCallback",
    "TensorBoardCallback",
    "report_to_names",
    "write_training_curves",
]

logger = get_logger(__name__)

LOGS_NAME = "logs.jsonl"
CURVES_NAME = "training_curves.png"
# report_to name -> the module it needs, which is also what `pip install` takes. "all" is every installed one.
TRACKER_PACKAGES = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "comet_ml": "comet_ml",
    "aim": "aim",
    "clearml": "clearml",
    "dvclive": "dvclive",
    "trackio": "trackio",
    "swanlab": "swanlab",
}


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
        for key, value in _scalars(kwargs["logs"]).items():
            self.writer.add_scalar(key, value, state.global_step)
        self.writer.flush()

    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class AccelerateTrackerCallback(TrainerCallback):
    """Every log to accelerate's tracker ``name`` (``accelerate.tracking.LOGGER_TYPE_TO_CLASS[name]``), as the
    ``train/<key>`` and ``eval/<key>`` scalars TensorBoard gets; the run's arguments are stored as its
    configuration. Only the main process opens the tracker; it is finished at the end of training."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.tracker: Any = None

    def _open(self, args: Any) -> None:
        if self.tracker is not None:
            return
        tracker_class = _tracker_class(self.name)
        output_dir = Path(args.output_dir)
        run_name = args.run_name or output_dir.name
        if tracker_class.requires_logging_directory:
            tracker = tracker_class(run_name, str(output_dir / "runs"))
        else:
            tracker = tracker_class(run_name)
        # Only process zero gets here: without this, accelerate's decorators would build a PartialState.
        tracker.main_process_only = False
        getattr(
            tracker, "start", lambda: None
        )()  # accelerate >= 1.2 opens the run here, older ones in __init__
        tracker.store_init_configuration(_configuration(args))
        self.tracker = tracker

    def on_train_begin(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._open(args)

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if not state.is_world_process_zero:
            return
        self._open(args)
        self.tracker.log(_scalars(kwargs["logs"]), step=state.global_step)

    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.tracker is not None:
            self.tracker.finish()
            self.tracker = None


class _ReporterCallbacks(dict[str, Callable[[], TrainerCallback]]):
    """report_to name -> a callback factory; any name but tensorboard is an accelerate tracker."""

    def __missing__(self, name: str) -> Callable[[], TrainerCallback]:
        return functools.partial(AccelerateTrackerCallback, name)


REPORTER_CALLBACKS: dict[str, Callable[[], TrainerCallback]] = _ReporterCallbacks(
    tensorboard=TensorBoardCallback
)


def report_to_names(value: Any) -> list[str]:
    """transformers' ``report_to`` forms ("none", [], "all", a name, a list) as the list of tracker names, each
    checked: known to xf or to accelerate, and installed."""
    names = [value] if isinstance(value, str) else list(value or [])
    if names in (["none"], ["None"], [""]):
        return []
    if names == ["all"]:
        return [n for n, module in TRACKER_PACKAGES.items() if importlib.util.find_spec(module) is not None]
    for name in names:
        module = TRACKER_PACKAGES.get(name)
        if module is None:
            if name not in _accelerate_trackers():
                raise TrainingArgumentsError(
                    f"TrainingArguments.report_to={value!r}: {name!r} is not a tracker xf-train or accelerate "
                    f"knows; use one of {sorted(TRACKER_PACKAGES)}, 'all' or 'none', or register your own "
                    "accelerate GeneralTracker with accelerate.tracking.register_tracker_class (logs.jsonl in "
                    "output_dir is always written, and a TrainerCallback's on_log gets every log).",
                    key="report_to",
                )
        elif importlib.util.find_spec(module) is None:
            raise TrainingArgumentsError(
                f"TrainingArguments.report_to={value!r} needs the {module!r} package, which is not installed; "
                f"pip install {module} or pass report_to='none'.",
                key="report_to",
            )
    return names


def _accelerate_trackers() -> dict[str, Any]:
    """accelerate's tracker classes by name (its own and those registered with register_tracker_class)."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    return LOGGER_TYPE_TO_CLASS


def _tracker_class(name: str) -> Any:
    tracker_class = _accelerate_trackers().get(name)
    if tracker_class is None:
        raise TrainingArgumentsError(
            f"TrainingArguments.report_to: the installed accelerate has no {name!r} tracker; upgrade it "
            "(pip install -U accelerate) or drop that name from report_to.",
            key="report_to",
        )
    return tracker_class


def _scalars(logs: dict[str, Any]) -> dict[str, float]:
    """The numbers of one log, named ``train/<key>`` or ``eval/<key>`` (transformers' tracker names)."""
    out = {}
    for key, value in logs.items():
        value = _plain(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"eval/{key[5:]}" if key.startswith("eval_") else f"train/{key}"] = value
    return out


def _configuration(args: Any) -> dict[str, Any]:
    """The arguments as a tracker's hyperparameters: plain values kept, anything else as its text."""
    plain = (bool, int, float, str, type(None))
    return {k: v if isinstance(v, plain) else str(v) for k, v in args.to_dict().items()}


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
