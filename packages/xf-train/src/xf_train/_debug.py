"""``DebugUnderflowOverflow``: find the first module whose forward makes inf or nan.

Forward hooks on every module record the abs min and max of its parameters, inputs and outputs. The last
``max_frames_to_save`` records are kept; when an output or input holds inf/nan, :class:`OverflowDetectedError`
is raised with those frames as its report (nothing is printed). ``trace_batch_nums`` logs every frame of the
listed batches at info level; ``abort_after_batch_num`` stops after that many batches.
"""

from __future__ import annotations

import collections
from typing import Any

import torch
from torch import nn

from xf_core.errors import XfValueError
from xf_core.logging import get_logger
from xf_train.errors import OverflowDetectedError

__all__ = ["DebugUnderflowOverflow"]

logger = get_logger(__name__)


def _flatten(value: Any, name: str) -> list[tuple[str, Any]]:
    if isinstance(value, (tuple, list)):
        return [item for i, v in enumerate(value) for item in _flatten(v, f"{name}[{i}]")]
    if isinstance(value, dict) or (hasattr(value, "items") and hasattr(value, "keys")):  # dict, ModelOutput
        return [item for k, v in value.items() for item in _flatten(v, f"{name}.{k}")]
    return [(name, value)]


class DebugUnderflowOverflow:
    """Hooks on ``model`` that raise at the first inf/nan with the preceding abs min/max frames."""

    def __init__(
        self,
        model: nn.Module,
        *,
        max_frames_to_save: int = 21,
        trace_batch_nums: list[int] | tuple[int, ...] = (),
        abort_after_batch_num: int | None = None,
    ) -> None:
        self.model = model
        self.frames: collections.deque[str] = collections.deque(maxlen=max_frames_to_save)
        self.trace_batch_nums: set[int] = set(trace_batch_nums)
        self.abort_after_batch_num = abort_after_batch_num
        self.batch_number: int = 0
        self._names = {module: name or type(model).__name__ for name, module in model.named_modules()}
        self._handles = [m.register_forward_hook(self._hook) for m in model.modules()]

    def remove(self) -> None:
        """Detach the hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> DebugUnderflowOverflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        name = self._names[module]
        lines = [f"{'':17} {name} {type(module).__name__}"]
        bad: str | None = None
        values = [
            *module.named_parameters(recurse=False),
            *_flatten(inputs, "input"),
            *_flatten(output, "output"),
        ]
        for label, value in values:
            if not isinstance(value, torch.Tensor) or not value.is_floating_point() or value.numel() == 0:
                continue
            with torch.no_grad():
                magnitude = value.detach().abs()
                low, high = magnitude.min().item(), magnitude.max().item()
                finite = bool(torch.isfinite(value).all())
            lines.append(f"{low:8.2e} {high:8.2e} {label}" + ("" if finite else "  <-- inf/nan"))
            if not finite and bad is None:
                bad = label
        frame = "\n".join(lines)
        self.frames.append(frame)
        if self.batch_number in self.trace_batch_nums:
            logger.info("batch %d:\n%s", self.batch_number, frame)
        if bad is not None:
            report = "\n".join(self.frames)
            raise OverflowDetectedError(
                f"inf/nan in {bad} of {name} ({type(module).__name__}) during batch {self.batch_number}. "
                "The last frames (abs min, abs max) are below and in .report; a max near the dtype's limit "
                f"points to overflow: train in float32 or bfloat16 instead of float16.\n{report}",
                module=name,
                variable=bad,
                batch_number=self.batch_number,
                report=report,
            )
        if module is self.model:
            self.batch_number += 1
            if self.abort_after_batch_num is not None and self.batch_number > self.abort_after_batch_num:
                raise XfValueError(
                    f"DebugUnderflowOverflow stopped after {self.batch_number} batches "
                    f"(abort_after_batch_num={self.abort_after_batch_num})."
                )
