"""Stopping criteria: callables ``(input_ids, scores) -> BoolTensor[B]`` (True = this row is done).

Transformers' class names. A user's own criterion is any callable of that signature (it may return a bool
for the whole batch). ``scores`` is the tuple of processed scores so far when ``output_scores`` is on, else
``None``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from xf_core.errors import XfValueError

__all__ = [
    "EosTokenCriteria",
    "MaxLengthCriteria",
    "MaxTimeCriteria",
    "StopStringCriteria",
    "StoppingCriteria",
    "StoppingCriteriaList",
]

Criterion = Callable[..., Any]


class StoppingCriteria:
    """Base class (optional: any callable ``(input_ids, scores) -> BoolTensor[B] | bool`` works)."""

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(input_ids, scores).")


def _as_rows(done: Any, input_ids: torch.Tensor) -> torch.Tensor:
    if isinstance(done, torch.Tensor):
        return done.to(device=input_ids.device, dtype=torch.bool).reshape(-1).expand(input_ids.shape[0])
    return torch.full((input_ids.shape[0],), bool(done), dtype=torch.bool, device=input_ids.device)


class StoppingCriteriaList(list[StoppingCriteria]):
    """Criteria OR-ed together."""

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for criterion in self:
            done = done | _as_rows(criterion(input_ids, scores, **kwargs), input_ids)
        return done

    @property
    def max_length(self) -> int | None:
        return next((c.max_length for c in self if isinstance(c, MaxLengthCriteria)), None)


class MaxLengthCriteria(StoppingCriteria):
    """Stop when the sequence (prompt included) has ``max_length`` tokens."""

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        done = input_ids.shape[-1] >= self.max_length
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class MaxTimeCriteria(StoppingCriteria):
    """Stop once ``max_time`` seconds have passed since ``initial_timestamp`` (default: construction)."""

    def __init__(self, max_time: float, initial_timestamp: float | None = None) -> None:
        self.max_time = max_time
        self.initial_timestamp: float = time.time() if initial_timestamp is None else initial_timestamp

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        done = time.time() - self.initial_timestamp > self.max_time
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class EosTokenCriteria(StoppingCriteria):
    """A row is done when its last token is one of ``eos_token_id``."""

    def __init__(self, eos_token_id: int | Sequence[int] | torch.Tensor) -> None:
        if isinstance(eos_token_id, torch.Tensor):
            self.eos_token_id = eos_token_id.reshape(-1).long()
        else:
            ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
            self.eos_token_id = torch.tensor(ids, dtype=torch.long)

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        if self.eos_token_id.device != input_ids.device:
            self.eos_token_id: torch.Tensor = self.eos_token_id.to(input_ids.device)
        return torch.isin(input_ids[:, -1], self.eos_token_id)


class StopStringCriteria(StoppingCriteria):
    """A row is done when the decoded text has one of ``stop_strings`` overlapping its last token.

    As in transformers, a stop string may start inside an earlier token and end inside the last one
    (``["sto", "pper"]`` stops on "stop"), but a stop string that lies wholly before the last token does not
    stop the row again. ``tokenizer`` is anything with ``decode(ids) -> str``.
    """

    def __init__(self, tokenizer: Any, stop_strings: str | Sequence[str]) -> None:
        strings = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings)
        if not strings or any(not s for s in strings):
            raise XfValueError("stop_strings must be a non-empty string or a list of non-empty strings.")
        if not callable(getattr(tokenizer, "decode", None)):
            raise XfValueError(
                "stop_strings need a tokenizer with a decode(ids) method; pass tokenizer=... to generate."
            )
        self.tokenizer = tokenizer
        self.stop_strings = strings
        # Enough trailing tokens to cover the longest stop string even if every token were one character.
        self._window = max(len(s) for s in strings) + 1

    def __call__(self, input_ids: torch.Tensor, scores: Any = None, **kwargs: Any) -> torch.Tensor:
        rows = input_ids[:, -self._window :].tolist()
        done = [self._row_done(row) for row in rows]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def _row_done(self, ids: list[int]) -> bool:
        text = self.tokenizer.decode(ids)
        before_last = len(self.tokenizer.decode(ids[:-1])) if len(ids) > 1 else 0
        for s in self.stop_strings:
            start = text.find(s, max(0, before_last - len(s) + 1))
            if start != -1 and start + len(s) > before_last:
                return True
        return False
