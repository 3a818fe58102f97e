"""transformers' callback API: ``TrainerCallback``, ``TrainerState``, ``TrainerControl`` and the stock callbacks.

The Trainer calls ``CallbackHandler.<event>(args, state, control, **kwargs)`` at the same points and in the
same order as transformers' Trainer (``on_init_end``, ``on_train_begin``, ``on_epoch_begin``,
``on_step_begin``, ``on_substep_end`` per micro-batch but the last, ``on_pre_optimizer_step``,
``on_optimizer_step``, ``on_step_end``, then ``on_log``/``on_evaluate``/``on_save`` as due, ``on_epoch_end``,
``on_train_end``). :class:`DefaultFlowCallback` decides, from the arguments, when a step logs, evaluates,
saves or stops, by setting ``control`` flags; any callback may set them too (EarlyStoppingCallback sets
``should_training_stop``).

A plain function ``f(event, trainer, payload)`` is still accepted as a callback: it is called with
``"step_end"`` after a step's log/evaluate/save, and with ``"log"``, ``"evaluate"`` and ``"save"``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xf_core.logging import get_logger, progress_bar

__all__ = [
    "CallbackHandler",
    "DefaultFlowCallback",
    "EarlyStoppingCallback",
    "PrinterCallback",
    "ProgressCallback",
    "TrainerCallback",
    "TrainerControl",
    "TrainerState",
]

logger = get_logger(__name__)

EVENTS = (
    "on_init_end",
    "on_train_begin",
    "on_train_end",
    "on_epoch_begin",
    "on_epoch_end",
    "on_step_begin",
    "on_pre_optimizer_step",
    "on_optimizer_step",
    "on_substep_end",
    "on_step_end",
    "on_evaluate",
    "on_predict",
    "on_save",
    "on_log",
    "on_prediction_step",
)


@dataclass
class TrainerState:
    """Progress of a run, saved as trainer_state.json (transformers' keys)."""

    epoch: float = 0.0
    global_step: int = 0
    max_steps: int = 0
    logging_steps: int = 500
    eval_steps: int = 500
    save_steps: int = 500
    train_batch_size: int | None = None
    num_train_epochs: int = 0
    num_input_tokens_seen: int = 0
    total_flos: float = 0
    log_history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_global_step: int | None = None
    best_model_checkpoint: str | None = None
    is_local_process_zero: bool = True
    is_world_process_zero: bool = True
    is_hyper_param_search: bool = False
    trial_name: str | None = None
    trial_params: dict[str, Any] | None = None
    stateful_callbacks: dict[str, Any] = field(default_factory=dict)

    def save_to_json(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load_from_json(cls, path: str | os.PathLike[str]) -> TrainerState:
        data = json.loads(Path(path).read_text())
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class TrainerControl:
    """Flags the callbacks set to steer the loop; the Trainer resets them once acted on."""

    should_training_stop: bool = False
    should_epoch_stop: bool = False
    should_save: bool = False
    should_evaluate: bool = False
    should_log: bool = False

    def _new_training(self) -> None:
        self.should_training_stop = False

    def _new_epoch(self) -> None:
        self.should_epoch_stop = False

    def _new_step(self) -> None:
        self.should_save = self.should_evaluate = self.should_log = False

    def state(self) -> dict[str, Any]:
        return {"args": dataclasses.asdict(self), "attributes": {}}


class TrainerCallback:
    """Override any of the ``on_*`` events; each gets ``(args, state, control, **kwargs)`` with ``model``,
    ``optimizer``, ``lr_scheduler``, ``train_dataloader``, ``eval_dataloader`` (and ``logs``/``metrics``) in
    kwargs, as in transformers. Return ``None`` or the ``control``."""

    def on_init_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any: ...
    def on_train_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any: ...
    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any: ...
    def on_epoch_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any: ...
    def on_epoch_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any: ...
    def on_step_begin(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any: ...
    def on_pre_optimizer_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any: ...
    def on_optimizer_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any: ...
    def on_substep_end(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any: ...
    def on_step_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any: ...
    def on_evaluate(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any: ...
    def on_predict(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any: ...
    def on_save(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any: ...
    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> Any: ...
    def on_prediction_step(
        self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> Any: ...


class FunctionCallback(TrainerCallback):
    """A plain ``f(event, trainer, payload)`` as a callback (xf's shorthand)."""

    def __init__(self, function: Callable[[str, Any, dict[str, Any]], None], trainer: Any) -> None:
        self.function, self.trainer = function, trainer

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.function("log", self.trainer, kwargs["logs"])

    def on_evaluate(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.function("evaluate", self.trainer, kwargs["metrics"])

    def on_save(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.function("save", self.trainer, {"checkpoint": kwargs.get("checkpoint")})

    def after_step(self, logs: dict[str, float]) -> None:
        self.function("step_end", self.trainer, logs)


class CallbackHandler:
    """Calls every callback's ``on_<event>`` in order; the first is always :class:`DefaultFlowCallback`."""

    def __init__(self, callbacks: list[TrainerCallback], **references: Any) -> None:
        self.callbacks: list[TrainerCallback] = []
        for callback in callbacks:
            self.add_callback(callback)
        self.references = references  # model, optimizer, lr_scheduler, train/eval dataloader
        # event -> the callbacks that do something on it, for the callbacks as they were (see _listening)
        self._listeners: dict[str, list[TrainerCallback]] = {}
        self._listeners_of: tuple[tuple[int, int], ...] = ()

    def add_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        instance = callback() if isinstance(callback, type) else callback
        if type(instance) in {type(c) for c in self.callbacks} and not isinstance(instance, FunctionCallback):
            logger.warning("a %s is already among the callbacks; adding another", type(instance).__name__)
        self.callbacks.append(instance)

    def pop_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> TrainerCallback | None:
        for existing in self.callbacks:
            if existing is callback or (isinstance(callback, type) and type(existing) is callback):
                self.callbacks.remove(existing)
                return existing
        return None

    def remove_callback(self, callback: TrainerCallback | type[TrainerCallback]) -> None:
        self.pop_callback(callback)

    def call(
        self, event: str, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        listeners = self._listening(event)
        if not listeners:
            return
        kwargs = {**self.references, **kwargs}
        for callback in listeners:
            result = getattr(callback, event)(args, state, control, **kwargs)
            if isinstance(result, TrainerControl) and result is not control:
                for f in dataclasses.fields(TrainerControl):
                    setattr(control, f.name, getattr(result, f.name))

    def _listening(self, event: str) -> list[TrainerCallback]:
        """The callbacks whose ``event`` is more than TrainerCallback's no-op (their class overrides it, or the
        instance was given one), in order. Several events run every step for a few callbacks that mostly
        ignore them: skipping the no-ops keeps the dispatch off the step time. The choice is remade whenever
        the list changes or a callback gets a new attribute (an ``on_*`` method set on the instance)."""
        key = tuple((id(c), len(getattr(c, "__dict__", ()))) for c in self.callbacks)
        if key != self._listeners_of:
            self._listeners, self._listeners_of = {}, key
        listeners = self._listeners.get(event)
        if listeners is None:
            noop = getattr(TrainerCallback, event, None)
            listeners = [
                c
                for c in self.callbacks
                if event in getattr(c, "__dict__", ()) or getattr(type(c), event, None) is not noop
            ]
            self._listeners[event] = listeners
        return listeners


class DefaultFlowCallback(TrainerCallback):
    """When to log, evaluate, save and stop (transformers' rules, including the last step of a step-based
    run evaluating and saving)."""

    def on_step_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        step = state.global_step
        if step == 1 and args.logging_first_step:
            control.should_log = True
        if args.logging_strategy == "steps" and step % state.logging_steps == 0:
            control.should_log = True
        if args.eval_strategy == "steps" and step % state.eval_steps == 0 and args.eval_delay <= step:
            control.should_evaluate = True
        if args.save_strategy == "steps" and state.save_steps > 0 and step % state.save_steps == 0:
            control.should_save = True
        if step >= state.max_steps:
            control.should_training_stop = True
            if args.eval_strategy == "steps" and args.eval_delay <= step:
                control.should_evaluate = True
            if args.save_strategy == "steps":
                control.should_save = True

    def on_epoch_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if args.logging_strategy == "epoch":
            control.should_log = True
        if args.eval_strategy == "epoch" and args.eval_delay <= state.epoch:
            control.should_evaluate = True
        if args.save_strategy == "epoch":
            control.should_save = True


class ProgressCallback(TrainerCallback):
    """A progress bar over the optimizer steps, with the last loss (xf_core's tqdm-compatible bar; hidden
    with ``disable_tqdm`` or ``XF_DISABLE_PROGRESS=1``)."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self.bar = progress_bar(
                total=state.max_steps, initial=state.global_step, desc="train", disable=args.disable_tqdm
            )

    def on_step_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        logs = kwargs.get("logs", {})
        if self.bar is not None and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_train_end(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class PrinterCallback(TrainerCallback):
    """Print every log (transformers' callback when tqdm is off)."""

    def on_log(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        logs = {k: v for k, v in kwargs.get("logs", {}).items() if k != "total_flos"}
        if state.is_local_process_zero:
            print(logs)  # noqa: T201  # what this callback is for


class EarlyStoppingCallback(TrainerCallback):
    """Stop when ``metric_for_best_model`` has not improved by more than ``early_stopping_threshold`` for
    ``early_stopping_patience`` evaluations in a row (transformers' callback; needs ``metric_for_best_model``
    and an eval strategy)."""

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float = 0.0) -> None:
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_threshold = early_stopping_threshold
        self.early_stopping_patience_counter: int = 0

    def on_train_begin(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        from xf_train.errors import TrainingArgumentsError

        if args.metric_for_best_model is None:
            raise TrainingArgumentsError(
                "EarlyStoppingCallback needs TrainingArguments.metric_for_best_model (e.g. 'loss'), or "
                "load_best_model_at_end=True, which defaults it to 'loss'.",
                key="metric_for_best_model",
            )
        if args.eval_strategy == "no":
            raise TrainingArgumentsError(
                "EarlyStoppingCallback needs evaluations: set TrainingArguments.eval_strategy to 'steps' or "
                "'epoch' (and pass an eval_dataset).",
                key="eval_strategy",
            )

    def on_evaluate(self, args: Any, state: TrainerState, control: TrainerControl, **kwargs: Any) -> None:
        name = args.metric_for_best_model
        key = name if name.startswith("eval_") else f"eval_{name}"
        value = kwargs["metrics"].get(key)
        if value is None:
            logger.warning("early stopping is off: the metrics have no %r", key)
            return
        better = (lambda a, b: a > b) if args.greater_is_better else (lambda a, b: a < b)
        best = state.best_metric
        if best is None or (better(value, best) and abs(value - best) > self.early_stopping_threshold):
            self.early_stopping_patience_counter = 0
        else:
            self.early_stopping_patience_counter += 1
        if self.early_stopping_patience_counter >= self.early_stopping_patience:
            control.should_training_stop = True

    def state(self) -> dict[str, Any]:
        return {
            "args": {
                "early_stopping_patience": self.early_stopping_patience,
                "early_stopping_threshold": self.early_stopping_threshold,
            },
            "attributes": {"early_stopping_patience_counter": self.early_stopping_patience_counter},
        }
