"""Small helpers shared by the task pipelines (label lookup, model output access, length limits)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from xf_pipeline.errors import PipelineParameterError

__all__ = ["check_choice", "id2label", "max_input_length", "output_field", "split_rows"]

_HUGE = 1_000_000


def output_field(output: Any, *names: str) -> torch.Tensor:
    """The first of ``names`` present on a model output (attribute or key), else its first field."""
    for name in names:
        value = getattr(output, name, None)
        if value is None and isinstance(output, dict):
            value = output.get(name)
        if value is not None:
            return value
    return output[0]


def id2label(config: Any, index: int) -> str:
    """``config.id2label[index]`` whether the mapping's keys are ints or strings; ``LABEL_i`` when absent."""
    mapping = getattr(config, "id2label", None) or {}
    return str(mapping.get(index, mapping.get(str(index), f"LABEL_{index}")))


def max_input_length(tokenizer: Any, config: Any) -> int | None:
    """The longest input the model takes: the tokenizer's ``model_max_length`` when set to a real value,
    else the config's ``max_position_embeddings``; None when neither is known."""
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < _HUGE:
        return limit
    limit = getattr(config, "max_position_embeddings", None)
    return limit if isinstance(limit, int) and limit > 0 else None


def check_choice(task: str, parameter: str, value: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value.lower() not in choices:
        raise PipelineParameterError(
            f"{task}: {parameter}={value!r} is not valid; pass one of {', '.join(choices)}.",
            task=task,
            parameter=parameter,
        )
    return value.lower()


def split_rows(
    encoded: Mapping[str, Any], keys: Iterable[str], rows: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """One dict of ``(1, T, ...)`` int64 tensors per row of an unpadded batch tokenizer output (lists of
    rows), holding those of ``keys`` the output has; ``rows`` picks rows (default: all, in order)."""
    present = [key for key in keys if key in encoded]
    indices = range(len(encoded["input_ids"])) if rows is None else rows
    return [{key: torch.tensor([encoded[key][i]], dtype=torch.long) for key in present} for i in indices]
