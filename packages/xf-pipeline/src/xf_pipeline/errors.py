"""Errors raised by xf-pipeline. Each names the task, parameter or input at fault and says how to fix it."""

from __future__ import annotations

from collections.abc import Iterable

from xf_core.errors import XfValueError

__all__ = [
    "NoDefaultModelError",
    "PipelineInputError",
    "PipelineParameterError",
    "UnknownTaskError",
    "UnsupportedSentenceModuleError",
]


class UnknownTaskError(XfValueError):
    """The task name is neither a task nor an alias; ``valid`` lists what is accepted."""

    def __init__(self, task: str, valid: Iterable[str]) -> None:
        self.task = task
        self.valid: list[str] = sorted(valid)
        super().__init__(f"unknown task {task!r}; pass one of: {', '.join(self.valid)}.")


class NoDefaultModelError(XfValueError):
    """The task has no default model; the message says which kind of checkpoint to pass."""

    def __init__(self, task: str, kind: str) -> None:
        self.task = task
        super().__init__(
            f"task {task!r} has no default model; pass model=<a local directory or Hub repo id> of {kind} "
            f"(on the command line: --model M)."
        )


class PipelineParameterError(XfValueError):
    """A keyword argument of a pipeline is unknown or has a bad value; ``parameter`` names it."""

    def __init__(self, message: str, *, task: str, parameter: str) -> None:
        self.task = task
        self.parameter = parameter
        super().__init__(message)


class PipelineInputError(XfValueError):
    """An input has the wrong shape for the task (e.g. a string where a question/context dict is needed)."""

    def __init__(self, message: str, *, task: str) -> None:
        self.task = task
        super().__init__(message)


class UnsupportedSentenceModuleError(XfValueError):
    """A sentence-transformers model's ``modules.json`` lists a module xf does not implement (Dense, a custom
    module), so xf's sentence embeddings would differ from the model's own; ``modules`` names them."""

    def __init__(self, modules: Iterable[str], *, source: str) -> None:
        self.modules: list[str] = list(modules)
        self.source = source
        super().__init__(
            f"{source}/modules.json lists module(s) xf does not implement: {', '.join(self.modules)}; xf runs "
            "Transformer, Pooling and Normalize only. Use sentence-transformers for this model, or "
            "feature-extraction with pooling='none' for its token embeddings."
        )
