"""Candidate decoding (speculative decoding): something cheap proposes the next tokens, the model checks them
all in one forward and keeps the longest prefix it agrees with, plus the token it picks after that prefix.

Greedy only, batch 1, as in transformers: the result is token for token greedy decoding of the model (each
verified position is scored exactly as greedy would score it, with the logits processors), only faster when
the proposals are often right. Two proposers:

- :class:`PromptLookup` (``prompt_lookup_num_tokens=N``): find the last ``max_matching_ngram_size``-gram (then
  shorter ones) earlier in the prompt + generated text and propose the N tokens that followed it there
  (transformers' ``PromptLookupCandidateGenerator``: the first, leftmost, match wins).
- :class:`._assisted.DraftModel` (``assistant_model=draft``): a smaller model of the same vocabulary drafts
  ``num_assistant_tokens`` tokens greedily.

Each round: the proposer writes ``k`` candidates after the sequence; the model runs over the tokens it has not
cached plus the candidates (``logits_to_keep=k + 1``); the accepted tokens are cut at the length budget and after
the first EOS; the KV cache is cropped back to the accepted text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import torch

from xf_core.logging import get_logger

from ._config import GenerationConfig
from ._outputs import GenerateDecoderOnlyOutput
from ._processors import LogitsProcessorList
from ._stopping import StoppingCriteriaList

if TYPE_CHECKING:
    from ._decode import _Inputs

__all__ = ["PromptLookup", "Proposer", "candidate_loop", "forward_span"]

logger = get_logger(__name__)


class Proposer(Protocol):
    """Proposes candidate tokens: ``propose`` writes up to ``max_new`` tokens into ``sequences[0, cur_len:]`` and
    returns how many; ``update`` hears how many of the ``proposed`` ones the model accepted."""

    name: str

    def propose(self, sequences: torch.Tensor, cur_len: int, max_new: int) -> int: ...

    def update(self, proposed: int, accepted: int) -> None: ...

    def finish(self) -> None: ...


def forward_span(
    model: torch.nn.Module,
    inputs: _Inputs,
    sequences: torch.Tensor,
    cache: Any,
    start: int,
    end: int,
    *,
    keep: int,
    model_kwargs: dict[str, Any] | None = None,
) -> torch.Tensor:
    """Run ``model`` on ``sequences[:, start:end]`` (positions ``start..end-1``, earlier ones in ``cache``) with
    the call's attention mask and positions; return the last ``keep`` logits ``(1, keep, vocab)`` in float32."""
    out = model(
        input_ids=sequences[:, start:end],
        attention_mask=inputs._mask(end),
        position_ids=None if inputs.position_ids is None else inputs.position_ids[:, start:end],
        past_key_values=cache,
        use_cache=True,
        cache_position=inputs.positions[start:end],
        logits_to_keep=keep,
        **(model_kwargs or {}),
    )
    return out.logits[:, -keep:, :].float()


def candidate_loop(
    inputs: _Inputs,
    input_ids: torch.Tensor,
    config: GenerationConfig,
    processors: LogitsProcessorList,
    criteria: StoppingCriteriaList,
    eos: torch.Tensor | None,
    pad: int | None,
    streamer: Any,
    proposer: Proposer,
) -> torch.Tensor | GenerateDecoderOnlyOutput:
    """Greedy decoding of ``inputs.model`` (batch 1), with the tokens ``proposer`` guesses checked in bulk."""
    _, L = input_ids.shape
    max_length = config.max_length
    assert max_length is not None and inputs.cache is not None  # checked by the dispatch
    cache = inputs.cache
    want_scores = bool(config.return_dict_in_generate and config.output_scores)
    want_logits = bool(config.return_dict_in_generate and config.output_logits)
    scores_out: list[torch.Tensor] = []
    logits_out: list[torch.Tensor] = []
    sequences = torch.full(
        (1, max_length), pad if pad is not None else 0, dtype=input_ids.dtype, device=input_ids.device
    )
    sequences[:, :L] = input_ids
    check_stop = len(criteria) > 0
    proposed_total = accepted_total = rounds = 0
    model_kwargs: dict[str, Any] | None = inputs.model_kwargs  # prompt-only inputs reach the first forward

    cur_len = L
    while True:
        budget = max_length - cur_len  # >= 1: the model adds one token of its own after the candidates
        k = proposer.propose(sequences, cur_len, budget - 1) if budget > 1 else 0
        start = cache.get_seq_length()
        logits = forward_span(
            inputs.model, inputs, sequences, cache, start, cur_len + k, keep=k + 1, model_kwargs=model_kwargs
        )[0]  # (k + 1, vocab): the model's next-token logits after each candidate prefix
        model_kwargs = None
        if processors:
            scores = torch.stack(
                [processors(sequences[:, : cur_len + i], logits[i : i + 1])[0] for i in range(k + 1)]
            )
        else:
            scores = logits
        chosen = scores.argmax(dim=-1)  # (k + 1,)
        agree = (chosen[:k] == sequences[0, cur_len : cur_len + k]).int().cumprod(dim=0)
        n = int(agree.sum()) if k else 0
        valid = chosen[: n + 1][:budget]
        if eos is not None:
            hits = torch.isin(valid, eos).nonzero()
            if hits.numel():
                valid = valid[: int(hits[0, 0]) + 1]
        new = valid.numel()
        sequences[0, cur_len : cur_len + new] = valid
        if want_scores:
            scores_out.extend(scores[i : i + 1] for i in range(new))
        if want_logits:
            logits_out.extend(logits[i : i + 1] for i in range(new))
        proposed_total += k
        accepted_total += new - 1
        rounds += 1
        proposer.update(k, new - 1)
        cur_len += new
        cache.crop(cur_len - 1)  # the last accepted token is fed at the next round
        if streamer is not None:
            streamer.put(valid.cpu())
        if eos is not None and bool(torch.isin(valid[-1:], eos).any()):
            break
        if check_stop and bool(
            criteria(sequences[:, :cur_len], tuple(scores_out) if want_scores else None).all()
        ):
            break
        if cur_len >= max_length:
            break

    proposer.finish()
    if streamer is not None:
        streamer.end()
    rate = accepted_total / proposed_total if proposed_total else 0.0
    logger.debug(
        "%s: %d of %d candidate tokens accepted (%.1f%%) over %d target forwards for %d new tokens",
        proposer.name,
        accepted_total,
        proposed_total,
        100 * rate,
        rounds,
        cur_len - L,
    )
    sequences = sequences[:, :cur_len]
    if not config.return_dict_in_generate:
        return sequences
    return GenerateDecoderOnlyOutput(
        sequences=sequences,
        scores=tuple(scores_out) if want_scores else None,
        logits=tuple(logits_out) if want_logits else None,
        past_key_values=cache,
        num_candidate_tokens=proposed_total,
        num_accepted_tokens=accepted_total,
    )


class PromptLookup:
    """Prompt-lookup candidates: the tokens that followed the latest n-gram where it occurred first
    (``n`` from ``max_matching_ngram_size`` down to 1), at most ``num_tokens`` of them, cut before an EOS."""

    name = "prompt lookup"

    def __init__(self, num_tokens: int, max_ngram: int, eos: torch.Tensor | None) -> None:
        self.num_tokens = num_tokens
        self.max_ngram = max_ngram
        self.eos = eos

    def propose(self, sequences: torch.Tensor, cur_len: int, max_new: int) -> int:
        ids = sequences[0, :cur_len]
        for n in range(min(self.max_ngram, cur_len - 1), 0, -1):
            windows = ids.unfold(0, n, 1)  # (cur_len - n + 1, n)
            # A match must be followed by at least one token, so the last window (the n-gram itself) is out.
            starts = (windows[:-1] == ids[-n:]).all(dim=1).nonzero()
            if starts.numel() == 0:
                continue
            begin = int(starts[0, 0]) + n
            found = ids[begin : min(begin + self.num_tokens, cur_len)][:max_new]
            if self.eos is not None:
                hits = torch.isin(found, self.eos).nonzero()
                if hits.numel():
                    found = found[: int(hits[0, 0])]
            if found.numel() == 0:
                return 0  # transformers stops at the first match too, and falls back to one token
            sequences[0, cur_len : cur_len + found.numel()] = found
            return found.numel()
        return 0

    def update(self, proposed: int, accepted: int) -> None:
        return None

    def finish(self) -> None:
        return None
