"""Assisted decoding: a draft model (``generate(..., assistant_model=draft)``) proposes the candidates that
:func:`._candidates.candidate_loop` verifies.

The draft decodes greedily with its own KV cache, kept across rounds and cropped back to the text the target
accepted, and with the call's logits processors (so a repetition penalty does not make it guess wrong). How
many tokens it drafts per round is ``num_assistant_tokens`` (the call's, else the draft's
``generation_config``'s, else 20), changed after every round by ``num_assistant_tokens_schedule``:

- ``"constant"`` (default): unchanged;
- ``"heuristic"``: +2 when every candidate was accepted, else -1 (at least 1); the final value is written back
  to ``draft.generation_config.num_assistant_tokens``, so it carries over to the next call (as in transformers);
- ``"heuristic_transient"``: the same within one call only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..cache import DynamicCache
from ._candidates import forward_span
from ._config import GenerationConfig
from ._processors import LogitsProcessorList

if TYPE_CHECKING:
    from ._decode import _Inputs

__all__ = ["DEFAULT_NUM_ASSISTANT_TOKENS", "DraftModel"]

DEFAULT_NUM_ASSISTANT_TOKENS = 20  # transformers' default


class DraftModel:
    """Greedy drafts from ``draft``; a :class:`._candidates.Proposer`."""

    name = "assisted decoding"

    def __init__(
        self,
        draft: torch.nn.Module,
        inputs: _Inputs,
        config: GenerationConfig,
        processors: LogitsProcessorList,
        eos: torch.Tensor | None,
    ) -> None:
        self.draft = draft
        self.inputs = inputs
        self.processors = processors
        self.eos = eos
        self.cache = DynamicCache()
        self.draft_config: GenerationConfig | None = getattr(draft, "generation_config", None)
        from_draft = self.draft_config.num_assistant_tokens if self.draft_config is not None else None
        self.num_tokens = config.num_assistant_tokens or from_draft or DEFAULT_NUM_ASSISTANT_TOKENS
        self.schedule = config.num_assistant_tokens_schedule or "constant"

    def propose(self, sequences: torch.Tensor, cur_len: int, max_new: int) -> int:
        k = min(self.num_tokens, max_new)
        if k <= 0:
            return 0
        # What the draft cached beyond the accepted text is stale; the accepted part stays.
        start = min(self.cache.get_seq_length(), cur_len - 1)
        self.cache.crop(start)
        for j in range(k):
            end = cur_len + j
            logits = forward_span(self.draft, self.inputs, sequences, self.cache, start, end, keep=1)[:, -1]
            scores = self.processors(sequences[:, :end], logits) if self.processors else logits
            token = scores.argmax(dim=-1)
            sequences[0, end] = token[0]
            start = end
            if self.eos is not None and bool(torch.isin(token, self.eos).any()):
                return j + 1  # the target would stop there if it agreed
        return k

    def update(self, proposed: int, accepted: int) -> None:
        if self.schedule == "constant":
            return
        self.num_tokens = self.num_tokens + 2 if accepted == proposed else max(1, self.num_tokens - 1)

    def finish(self) -> None:
        if self.schedule == "heuristic" and self.draft_config is not None:
            self.draft_config.num_assistant_tokens = self.num_tokens
