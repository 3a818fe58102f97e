"""Errors of xf-train. Each subclasses an xf_core error (and so the nearest builtin) and names the argument
or file and the fix."""

from __future__ import annotations

from xf_core.errors import XfConfigError, XfFileNotFoundError

__all__ = ["CheckpointNotFoundError", "TrainingArgumentsError"]


class TrainingArgumentsError(XfConfigError):
    """A TrainingArguments field (``key``) has a value xf-train cannot use."""


class CheckpointNotFoundError(XfFileNotFoundError):
    """``resume_from_checkpoint`` points to no usable checkpoint-<step> folder."""
