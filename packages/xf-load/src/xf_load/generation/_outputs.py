"""What ``generate(..., return_dict_in_generate=True)`` returns (transformers' names and fields)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from xf_load.outputs import ModelOutput

__all__ = ["GenerateBeamDecoderOnlyOutput", "GenerateDecoderOnlyOutput"]


@dataclass
class GenerateDecoderOnlyOutput(ModelOutput):
    """Greedy or sampling output.

    ``sequences``: (B * num_return_sequences, prompt + new tokens). ``scores``: one (B, vocab) tensor of processed
    scores per new token (``output_scores=True``). ``logits``: the raw logits per new token
    (``output_logits=True``). ``past_key_values``: the cache, ready to continue from (also as ``.cache``).
    ``compile_time``: with ``compile=``, the seconds this call spent compiling the decode step (or loading it
    from the compile cache); 0.0 when it was compiled already, ``None`` without compilation.

    Assisted and prompt-lookup decoding (xf's additions) also report ``num_candidate_tokens``, the candidate
    tokens the target model verified, and ``num_accepted_tokens``, how many of them it kept
    (``acceptance_rate`` is their ratio).
    """

    sequences: torch.Tensor | None = None
    scores: tuple[torch.Tensor, ...] | None = None
    logits: tuple[torch.Tensor, ...] | None = None
    past_key_values: Any = None
    compile_time: float | None = None
    num_candidate_tokens: int | None = None
    num_accepted_tokens: int | None = None

    @property
    def cache(self) -> Any:
        return self.past_key_values

    @property
    def acceptance_rate(self) -> float | None:
        """Accepted / verified candidate tokens (``None`` outside candidate decoding or without candidates)."""
        if not self.num_candidate_tokens or self.num_accepted_tokens is None:
            return None
        return self.num_accepted_tokens / self.num_candidate_tokens


@dataclass
class GenerateBeamDecoderOnlyOutput(ModelOutput):
    """Beam search output: ``sequences_scores`` are the final length-penalised beam scores (``output_scores``),
    ``scores`` the per-step processed log-probabilities of every beam, ``beam_indices`` which beam each new
    token came from."""

    sequences: torch.Tensor | None = None
    sequences_scores: torch.Tensor | None = None
    scores: tuple[torch.Tensor, ...] | None = None
    logits: tuple[torch.Tensor, ...] | None = None
    beam_indices: torch.Tensor | None = None
    past_key_values: Any = None

    @property
    def cache(self) -> Any:
        return self.past_key_values
