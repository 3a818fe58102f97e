"""Errors of xf-load. Each subclasses an xf_core error (and so the nearest builtin) and names the file or
key and the fix."""

from __future__ import annotations

from typing import Any

from xf_core.errors import MissingDependencyError, XfConfigError, XfError, XfFileNotFoundError, XfValueError

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "CheckpointNotFoundError",
    "DeviceError",
    "DtypeMismatchError",
    "GenerationLengthError",
    "GenerationMemoryError",
    "InputIdsError",
    "LoadOptionsError",
    "MissingDependencyError",
    "QuantizationError",
    "ShapeMismatchError",
    "TensorParallelUnavailableError",
    "UnknownModelTypeError",
]


class CheckpointError(XfError, OSError):
    """A checkpoint file is unreadable: corrupt, truncated, or an index that points to the wrong place."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        super().__init__(message)
        self.file = file
        self.key = key

    def __str__(self) -> str:
        return str(self.args[0])


class CheckpointNotFoundError(XfFileNotFoundError):
    """No weights file (model.safetensors, its index, or an opted-in pytorch_model.bin) where one was expected."""


class CheckpointMismatchError(XfValueError):
    """A saved directory's weights do not fit the model they are loaded into: ``missing_keys`` (model weights
    the checkpoint lacks) and ``unexpected_keys`` (checkpoint weights the model has no place for)."""

    def __init__(
        self, message: str, *, path: str, missing_keys: list[str], unexpected_keys: list[str]
    ) -> None:
        super().__init__(message)
        self.path = path
        self.missing_keys = missing_keys
        self.unexpected_keys = unexpected_keys


class ShapeMismatchError(XfValueError):
    """A checkpoint tensor's shape differs from the model parameter it is loaded into."""

    def __init__(
        self, message: str, *, key: str, file: str | None, expected: tuple[int, ...], found: tuple[int, ...]
    ) -> None:
        super().__init__(message)
        self.key = key
        self.file = file
        self.expected = expected
        self.found = found


class DtypeMismatchError(XfValueError):
    """A checkpoint tensor's dtype cannot be loaded into its parameter (an integer tensor for a float weight)."""

    def __init__(self, message: str, *, key: str, file: str | None, expected: Any, found: Any) -> None:
        super().__init__(message)
        self.key = key
        self.file = file
        self.expected = expected
        self.found = found


class UnknownModelTypeError(XfConfigError):
    """config.json names a model_type (or an architecture) that xf-load has no family for."""


class QuantizationError(XfConfigError):
    """A quantization_config that cannot be used (unknown method, unsupported option)."""


class LoadOptionsError(XfConfigError):
    """A ``from_pretrained`` loading option (a :class:`~xf_load.LoadOptions` field) has a wrong value; ``key``
    names the field."""


class TensorParallelUnavailableError(LoadOptionsError):
    """``tp_plan`` was passed but no package provides tensor-parallel loading (the ``xf_load.tp_plans``
    entry point); ``key`` is ``"tp_plan"``."""


class DeviceError(LoadOptionsError):
    """A device (``device_map``, a pipeline's ``device``) that torch cannot parse or this machine does not have;
    ``key`` names the option, ``device`` the value, and the message says what torch reports as available."""

    def __init__(self, message: str, *, key: str, device: Any) -> None:
        super().__init__(message, key=key)
        self.device = device


class InputIdsError(XfValueError):
    """Token ids a model cannot embed: an id outside ``[0, vocab_size)``, or an empty batch or sequence.
    ``value`` is the offending id (or shape) and ``limit`` the vocabulary size (or ``None``)."""

    def __init__(self, message: str, *, value: object, limit: int | None = None) -> None:
        super().__init__(message)
        self.value = value
        self.limit = limit


class GenerationLengthError(XfValueError):
    """``max_new_tokens`` / ``max_length`` (``key``) asks for more positions than the model's learned position
    table holds (``limit``)."""

    def __init__(self, message: str, *, key: str, value: int, limit: int) -> None:
        super().__init__(message)
        self.key = key
        self.value = value
        self.limit = limit


class GenerationMemoryError(XfValueError, MemoryError):
    """The buffers a ``generate`` call would allocate (KV cache, token and score buffers) do not fit the
    memory available on the model's device: ``estimate`` and ``available`` in bytes."""

    def __init__(self, message: str, *, estimate: int, available: int) -> None:
        super().__init__(message)
        self.estimate = estimate
        self.available = available
