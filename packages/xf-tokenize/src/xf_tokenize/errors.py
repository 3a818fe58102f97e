"""Exceptions of xf-tokenize. Each subclasses an xf-core error (and so the nearest builtin) and says what to do."""

from __future__ import annotations

from xf_core.errors import XfConfigError, XfFileNotFoundError, XfValueError

__all__ = [
    "ChatTemplateError",
    "ImageProcessingError",
    "NoTokenizerFilesError",
    "PaddingError",
    "TokenizerFileError",
    "TruncationError",
]


class NoTokenizerFilesError(XfFileNotFoundError):
    """A directory or repo holds none of the files a tokenizer can be built from; ``looked_for`` lists them."""

    def __init__(self, where: str, looked_for: list[str]) -> None:
        self.looked_for = looked_for
        super().__init__(
            f"{where} has no tokenizer files: looked for {', '.join(looked_for)}. Pass the directory (or repo) "
            "that holds the tokenizer, or save one there with `tokenizer.save_pretrained(...)`.",
            path=where,
        )


class TokenizerFileError(XfConfigError):
    """A tokenizer file exists but cannot be read (bad JSON, wrong format); ``file`` names it."""


class PaddingError(XfValueError):
    """A padding request is invalid (unknown strategy, no pad token, bad ``pad_to_multiple_of``)."""


class TruncationError(XfValueError):
    """A truncation request cannot be met (``max_length`` too small for the special tokens, bad stride)."""


class ChatTemplateError(XfValueError):
    """A chat template is missing, fails to render, or tries to leave its sandbox."""


class ImageProcessingError(XfValueError):
    """An image cannot be read or processed (unreadable or truncated file, not an image, a mode or shape that
    cannot be converted); the message names the input."""
