"""Errors of xf-quant. Each subclasses an xf_core error (and so the nearest builtin) and names the field,
module or file involved and the fix."""

from __future__ import annotations

from xf_core.errors import MissingDependencyError, XfConfigError, XfDependencyVersionError, XfValueError

__all__ = [
    "BitsAndBytesVersionError",
    "DeviceMapError",
    "MissingDependencyError",
    "PrequantizedWeightsError",
    "QuantizationConfigError",
]


class QuantizationConfigError(XfConfigError):
    """A :class:`~xf_quant.BitsAndBytesConfig` field has a wrong value; ``key`` names the field."""


class BitsAndBytesVersionError(XfDependencyVersionError, MissingDependencyError):
    """bitsandbytes is installed but older than xf-quant needs.

    It is both an :class:`XfDependencyVersionError` (the house error for a wrong version) and a
    :class:`MissingDependencyError` (the *needed* version is missing), so either ``except`` catches it.
    """

    def __init__(self, installed: str, required: str) -> None:
        XfDependencyVersionError.__init__(
            self, "bitsandbytes", installed, required, purpose="4-bit and 8-bit quantization"
        )
        self.install: str = f"pip install -U 'bitsandbytes{required}'"
        self.name: str | None = "bitsandbytes"


class DeviceMapError(XfValueError):
    """A ``device_map`` places quantized modules where bitsandbytes cannot run them (the disk, or the CPU
    next to an accelerator without ``llm_int8_enable_fp32_cpu_offload``); ``modules`` names them."""

    def __init__(self, message: str, *, modules: list[str]) -> None:
        super().__init__(message)
        self.modules = modules


class PrequantizedWeightsError(XfValueError):
    """A pre-quantized checkpoint lacks a bitsandbytes state tensor, or has one the model cannot take;
    ``key`` names the checkpoint key."""

    def __init__(self, message: str, *, key: str, file: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.file = file
