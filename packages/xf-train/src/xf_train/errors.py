"""Errors of xf-train. Each subclasses an xf_core error (and so the nearest builtin) and names the argument
or file and the fix."""

from __future__ import annotations

from xf_core.errors import XfConfigError, XfFileNotFoundError, XfOSError, XfValueError

__all__ = [
    "CheckpointNotFoundError",
    "NonFiniteError",
    "OutputDirError",
    "OverflowDetectedError",
    "TrainingArgumentsError",
    "UnsafeCheckpointError",
    "UnsupportedArgumentError",
]


class TrainingArgumentsError(XfConfigError):
    """A TrainingArguments field (``key``) has a value xf-train cannot use."""


class UnsupportedArgumentError(TrainingArgumentsError, TypeError):
    """A keyword TrainingArguments does not have (``key``): a transformers field xf-train does not implement,
    or a typo. A ``TypeError`` too, as the dataclass's own unknown-keyword error is."""


class NonFiniteError(XfValueError):
    """Training produced a NaN/inf loss or gradient at optimizer step ``step``; ``name`` is the first
    non-finite parameter or gradient (or ``"loss"``). Raised before the optimizer step, so the weights and the
    last checkpoint are those of the previous step."""

    def __init__(self, message: str, *, step: int, name: str) -> None:
        super().__init__(message)
        self.step = step
        self.name = name


class CheckpointNotFoundError(XfFileNotFoundError):
    """``resume_from_checkpoint`` points to no usable checkpoint-<step> folder."""


class OutputDirError(XfOSError):
    """``TrainingArguments.output_dir`` (``path``) cannot hold the run's saves: a file is in the way, or the
    directory it would be created in is not writable. Raised by ``Trainer.__init__``, before any step runs."""


class UnsafeCheckpointError(XfValueError):
    """A checkpoint file (``path``) cannot be read without running code, or is corrupt; it is refused."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class OverflowDetectedError(XfValueError):
    """A forward pass produced inf or nan; ``module`` and ``variable`` name the first place, ``report`` holds
    the abs min/max of the frames before it."""

    def __init__(self, message: str, *, module: str, variable: str, batch_number: int, report: str) -> None:
        super().__init__(message)
        self.module = module
        self.variable = variable
        self.batch_number = batch_number
        self.report = report
