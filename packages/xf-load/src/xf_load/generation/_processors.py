"""Logits processors: plain callables ``(input_ids, scores) -> scores`` with transformers' class names.

``input_ids`` is ``(B, cur_len)`` (prompt and tokens so far), ``scores`` is ``(B, vocab)`` float32. None of
them reads a tensor back to the host, so a decode step that applies them stays free of syncs. A user's own
processor is any callable of that signature; :func:`build_logits_processors` puts the configured ones in
transformers' order and merges the user's in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from xf_core.errors import XfValueError

from ._config import GenerationConfig

__all__ = [
    "ForcedBOSTokenLogitsProcessor",
    "ForcedEOSTokenLogitsProcessor",
    "InfNanRemoveLogitsProcessor",
    "LogitNormalization",
    "LogitsProcessor",
    "LogitsProcessorList",
    "MinLengthLogitsProcessor",
    "MinNewTokensLengthLogitsProcessor",
    "MinPLogitsWarper",
    "NoBadWordsLogitsProcessor",
    "NoRepeatNGramLogitsProcessor",
    "RepetitionPenaltyLogitsProcessor",
    "SequenceBiasLogitsProcessor",
    "SuppressTokensAtBeginLogitsProcessor",
    "SuppressTokensLogitsProcessor",
    "TemperatureLogitsWarper",
    "TopKLogitsWarper",
    "TopPLogitsWarper",
    "TypicalLogitsWarper",
    "build_logits_processors",
]

Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_NEG_INF = -math.inf


class LogitsProcessor:
    """Base class (optional: any callable ``(input_ids, scores) -> scores`` works)."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(input_ids, scores).")


class LogitsProcessorList(list[LogitsProcessor]):
    """A list of processors applied in order."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        for processor in self:
            scores = processor(input_ids, scores, **kwargs) if kwargs else processor(input_ids, scores)
        return scores


def _vocab_mask(token_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
    ids = token_ids.to(scores.device)
    return mask.index_fill(0, ids[ids < scores.shape[-1]], True)


def _ids_tensor(ids: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
    if isinstance(ids, torch.Tensor):
        return ids.reshape(-1).long()
    return torch.tensor([ids] if isinstance(ids, int) else list(ids), dtype=torch.long)


# ---------------------------------------------------------------------------------------------- penalties


class RepetitionPenaltyLogitsProcessor(LogitsProcessor):
    """Divide positive (multiply negative) scores of tokens already in ``input_ids`` by ``penalty``.

    ``prompt_ignore_length`` (int, or one int per row) skips that many leading positions: generate passes the
    left-padding length of each row, so pad tokens are never penalised.
    """

    def __init__(self, penalty: float, prompt_ignore_length: int | torch.Tensor | None = None) -> None:
        if not penalty > 0:
            raise XfValueError(f"repetition_penalty must be > 0, got {penalty}.")
        self.penalty: float = float(penalty)
        self.prompt_ignore_length = prompt_ignore_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        vocab = scores.shape[-1]
        ignore = self.prompt_ignore_length
        if isinstance(ignore, int):
            input_ids = input_ids[:, ignore:]
        elif isinstance(ignore, torch.Tensor):
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            input_ids = input_ids.masked_fill(
                positions[None, :] < ignore.to(input_ids.device)[:, None], vocab
            )
        # Column `vocab` is a sink for ignored (or out-of-vocab) ids, dropped at the end.
        padded = torch.nn.functional.pad(scores, (0, 1))
        ids = input_ids.clamp(max=vocab)
        seen = padded.gather(1, ids)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return padded.scatter(1, ids, seen)[:, :vocab]


class NoRepeatNGramLogitsProcessor(LogitsProcessor):
    """Forbid any token that would repeat an n-gram of size ``ngram_size`` already in ``input_ids``."""

    def __init__(self, ngram_size: int) -> None:
        if ngram_size <= 0:
            raise XfValueError(f"no_repeat_ngram_size must be > 0, got {ngram_size}.")
        self.ngram_size = ngram_size

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        n = self.ngram_size
        cur_len = input_ids.shape[-1]
        if cur_len < n:
            return scores
        # The next token completes an n-gram whose first n-1 tokens are the current suffix; every earlier
        # window that starts with that suffix bans its own last token.
        suffix = input_ids[:, cur_len + 1 - n :]  # (B, n-1)
        windows = input_ids.unfold(1, n, 1)  # (B, W, n)
        hits = (windows[..., :-1] == suffix[:, None, :]).all(-1)  # (B, W)
        vocab = scores.shape[-1]
        banned = torch.zeros(scores.shape[0], vocab + 1, dtype=torch.bool, device=scores.device)
        banned.scatter_(1, torch.where(hits, windows[..., -1].clamp(max=vocab), vocab), True)
        return scores.masked_fill(banned[:, :vocab], _NEG_INF)


class SequenceBiasLogitsProcessor(LogitsProcessor):
    """Add a bias to a token when it would complete one of the given sequences.

    ``sequence_bias``: ``{(t1, ..., tn): bias}`` or transformers' list form ``[[[t1, ..., tn], bias], ...]``.
    """

    def __init__(self, sequence_bias: dict[tuple[int, ...], float] | list[list[Any]]) -> None:
        if isinstance(sequence_bias, list):
            sequence_bias = {tuple(ids): float(bias) for ids, bias in sequence_bias}
        if not sequence_bias or any(not seq for seq in sequence_bias):
            raise XfValueError("sequence_bias must map non-empty token-id tuples to floats.")
        self.sequence_bias: dict[tuple[int, ...], float] = dict(sequence_bias)
        self._prepared: tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] | None = (
            None
        )

    def _prepare(self, scores: torch.Tensor) -> tuple[torch.Tensor, list]:
        vocab, device = scores.shape[-1], scores.device
        too_big = sorted({t for seq in self.sequence_bias for t in seq if t >= vocab})
        if too_big:
            raise XfValueError(
                f"token ids {too_big} in bad_words_ids/sequence_bias exceed the vocabulary ({vocab})."
            )
        single = torch.zeros(vocab, dtype=scores.dtype, device=device)
        by_prefix: dict[int, list[tuple[tuple[int, ...], float]]] = {}
        for seq, bias in self.sequence_bias.items():
            if len(seq) == 1:
                single[seq[0]] = bias
            else:
                by_prefix.setdefault(len(seq) - 1, []).append((seq, bias))
        groups = [
            (
                torch.tensor([s[:-1] for s, _ in group], device=device),
                torch.tensor([s[-1] for s, _ in group], device=device),
                torch.tensor([b for _, b in group], dtype=scores.dtype, device=device),
            )
            for group in by_prefix.values()
        ]
        self._prepared = (single, groups)
        return self._prepared

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        single, groups = self._prepared or self._prepare(scores)
        bias = single.expand_as(scores).clone()
        for prefixes, last, values in groups:
            if prefixes.shape[1] > input_ids.shape[1]:
                continue
            match = (input_ids[:, None, -prefixes.shape[1] :] == prefixes).all(-1)  # (B, n_seqs)
            bias.index_add_(1, last, torch.where(match, values, 0.0))
        return scores + bias


class NoBadWordsLogitsProcessor(SequenceBiasLogitsProcessor):
    """Forbid the token that would complete any sequence of ``bad_words_ids`` (an EOS alone is never banned)."""

    def __init__(
        self, bad_words_ids: list[list[int]], eos_token_id: int | list[int] | torch.Tensor | None = None
    ):
        if not bad_words_ids or any(not w for w in bad_words_ids):
            raise XfValueError("bad_words_ids must be a non-empty list of non-empty lists of token ids.")
        eos = set(_ids_tensor(eos_token_id).tolist()) if eos_token_id is not None else set()
        self.bad_words_ids = bad_words_ids
        self.sequence_bias: dict[tuple[int, ...], float] = {
            tuple(w): _NEG_INF for w in bad_words_ids if not (len(w) == 1 and w[0] in eos)
        }
        self._prepared = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return super().__call__(input_ids, scores) if self.sequence_bias else scores


# ---------------------------------------------------------------------------------------------- lengths


class _EosMask(LogitsProcessor):
    def __init__(self, eos_token_id: int | list[int] | torch.Tensor) -> None:
        self.eos_token_id: torch.Tensor = _ids_tensor(eos_token_id)
        self._mask: torch.Tensor | None = None

    def _eos_mask(self, scores: torch.Tensor) -> torch.Tensor:
        mask = self._mask
        if mask is None or mask.shape[0] != scores.shape[-1] or mask.device != scores.device:
            mask = self._mask = _vocab_mask(self.eos_token_id, scores)  # built once per generate call
        return mask

    def _ban_eos(self, scores: torch.Tensor) -> torch.Tensor:
        return scores.masked_fill(self._eos_mask(scores), _NEG_INF)


class MinLengthLogitsProcessor(_EosMask):
    """Forbid EOS while the whole sequence (prompt included) is shorter than ``min_length``."""

    def __init__(self, min_length: int, eos_token_id: int | list[int] | torch.Tensor) -> None:
        super().__init__(eos_token_id)
        self.min_length = min_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self._ban_eos(scores) if input_ids.shape[-1] < self.min_length else scores


class MinNewTokensLengthLogitsProcessor(_EosMask):
    """Forbid EOS until ``min_new_tokens`` tokens follow the ``prompt_length_to_skip`` prompt tokens."""

    def __init__(
        self, prompt_length_to_skip: int, min_new_tokens: int, eos_token_id: int | list[int] | torch.Tensor
    ) -> None:
        super().__init__(eos_token_id)
        self.prompt_length_to_skip = prompt_length_to_skip
        self.min_new_tokens = min_new_tokens

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] - self.prompt_length_to_skip < self.min_new_tokens:
            return self._ban_eos(scores)
        return scores


class ForcedBOSTokenLogitsProcessor(LogitsProcessor):
    """Force ``bos_token_id`` as the first generated token when the prompt is one token long."""

    def __init__(self, bos_token_id: int) -> None:
        self.bos_token_id = bos_token_id

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] != 1:
            return scores
        forced = torch.full_like(scores, _NEG_INF)
        forced[:, self.bos_token_id] = 0
        return forced


class ForcedEOSTokenLogitsProcessor(_EosMask):
    """Force an EOS token as the last token when ``max_length`` is reached."""

    def __init__(self, max_length: int, eos_token_id: int | list[int] | torch.Tensor) -> None:
        super().__init__(eos_token_id)
        self.max_length = max_length

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] != self.max_length - 1:
            return scores
        return torch.full_like(scores, _NEG_INF).masked_fill(self._eos_mask(scores), 0.0)


class SuppressTokensLogitsProcessor(LogitsProcessor):
    """Never generate ``suppress_tokens``."""

    def __init__(self, suppress_tokens: Sequence[int]) -> None:
        self.suppress_tokens: torch.Tensor = _ids_tensor(suppress_tokens)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores.masked_fill(_vocab_mask(self.suppress_tokens, scores), _NEG_INF)


class SuppressTokensAtBeginLogitsProcessor(LogitsProcessor):
    """Do not generate ``begin_suppress_tokens`` as the token at position ``begin_index``."""

    def __init__(self, begin_suppress_tokens: Sequence[int], begin_index: int) -> None:
        self.begin_suppress_tokens: torch.Tensor = _ids_tensor(begin_suppress_tokens)
        self.begin_index = begin_index

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[-1] != self.begin_index:
            return scores
        return scores.masked_fill(_vocab_mask(self.begin_suppress_tokens, scores), _NEG_INF)


class InfNanRemoveLogitsProcessor(LogitsProcessor):
    """NaN -> 0, +inf -> the largest float, -inf -> the smallest (so sampling never fails)."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        info = torch.finfo(scores.dtype)
        out = torch.where(scores != scores, 0.0, scores)
        out = torch.where(scores == math.inf, info.max, out)
        return torch.where(scores == _NEG_INF, info.min, out)


class LogitNormalization(LogitsProcessor):
    """Log-softmax the final scores (``renormalize_logits=True``)."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores.log_softmax(dim=-1)


# ---------------------------------------------------------------------------------------------- warpers


class TemperatureLogitsWarper(LogitsProcessor):
    def __init__(self, temperature: float) -> None:
        if not temperature > 0:
            raise XfValueError(f"temperature must be > 0, got {temperature}; for greedy use do_sample=False.")
        self.temperature: float = float(temperature)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return scores / self.temperature


class TopKLogitsWarper(LogitsProcessor):
    """Keep the ``top_k`` highest scores (ties with the k-th kept), at least ``min_tokens_to_keep``."""

    def __init__(self, top_k: int, *, min_tokens_to_keep: int = 1, filter_value: float = _NEG_INF) -> None:
        if top_k <= 0:
            raise XfValueError(f"top_k must be > 0, got {top_k}.")
        self.top_k: int = max(top_k, min_tokens_to_keep)
        self.filter_value = filter_value

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        k = min(self.top_k, scores.shape[-1])
        kth = torch.topk(scores, k)[0][..., -1:]
        return scores.masked_fill(scores < kth, self.filter_value)


class TopPLogitsWarper(LogitsProcessor):
    """Nucleus filtering: keep the smallest set of tokens whose probability mass reaches ``top_p``."""

    def __init__(self, top_p: float, *, min_tokens_to_keep: int = 1, filter_value: float = _NEG_INF) -> None:
        if not 0.0 < top_p <= 1.0:
            raise XfValueError(f"top_p must be in (0, 1], got {top_p}.")
        self.top_p: float = float(top_p)
        self.min_tokens_to_keep = min_tokens_to_keep
        self.filter_value = filter_value

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        sorted_scores, order = torch.sort(scores, descending=False)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - self.top_p)
        drop[..., -self.min_tokens_to_keep :] = False
        return scores.masked_fill(drop.scatter(1, order, drop), self.filter_value)


class MinPLogitsWarper(LogitsProcessor):
    """Drop tokens whose probability is below ``min_p`` times the top token's probability."""

    def __init__(self, min_p: float, *, min_tokens_to_keep: int = 1, filter_value: float = _NEG_INF) -> None:
        if not 0.0 <= min_p <= 1.0:
            raise XfValueError(f"min_p must be in [0, 1], got {min_p}.")
        self.min_p: float = float(min_p)
        self.min_tokens_to_keep = min_tokens_to_keep
        self.filter_value = filter_value

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        probs = scores.softmax(dim=-1)
        drop = probs < self.min_p * probs.amax(dim=-1, keepdim=True)
        keep = torch.topk(probs, min(self.min_tokens_to_keep, probs.shape[-1]), dim=-1).indices
        drop = drop.scatter(-1, keep, False)
        return scores.masked_fill(drop, self.filter_value)


class TypicalLogitsWarper(LogitsProcessor):
    """Locally typical sampling: keep the tokens whose surprise is closest to the entropy, up to ``mass``."""

    def __init__(
        self, mass: float = 0.9, *, min_tokens_to_keep: int = 1, filter_value: float = _NEG_INF
    ) -> None:
        if not 0.0 < mass < 1.0:
            raise XfValueError(f"typical_p must be in (0, 1), got {mass}.")
        self.mass: float = float(mass)
        self.min_tokens_to_keep = min_tokens_to_keep
        self.filter_value = filter_value

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        logp = scores.log_softmax(dim=-1)
        entropy = -(logp * logp.exp()).nansum(-1, keepdim=True)
        surprise_gap, order = torch.sort((-logp - entropy).abs(), descending=False)
        cumulative = scores.gather(-1, order).softmax(dim=-1).cumsum(dim=-1)
        last = (cumulative < self.mass).sum(dim=1).clamp(max=scores.shape[-1] - 1)
        drop = surprise_gap > surprise_gap.gather(1, last.view(-1, 1))
        drop[..., : self.min_tokens_to_keep] = False
        return scores.masked_fill(drop.scatter(1, order, drop), self.filter_value)


# ---------------------------------------------------------------------------------------------- assembly


def build_logits_processors(
    config: GenerationConfig,
    *,
    prompt_length: int,
    padding_lengths: torch.Tensor | None = None,
    custom: Sequence[Processor] | None = None,
) -> LogitsProcessorList:
    """The processors ``config`` asks for, in transformers' order, with the user's ``custom`` ones merged in.

    A custom processor of the same class as a configured one replaces it in place; the others run after the
    configured processors and before the sampling warpers. ``config`` must be resolved (no ``None`` where
    :data:`GLOBAL_DEFAULTS` has a value) and ``max_length`` final.
    """
    eos = config.eos_token_id
    procs: list[Processor] = []
    if config.sequence_bias is not None:
        procs.append(SequenceBiasLogitsProcessor(config.sequence_bias))
    if config.repetition_penalty is not None and config.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(config.repetition_penalty, padding_lengths))
    if config.no_repeat_ngram_size:
        procs.append(NoRepeatNGramLogitsProcessor(config.no_repeat_ngram_size))
    if config.bad_words_ids is not None:
        procs.append(NoBadWordsLogitsProcessor(config.bad_words_ids, eos))
    if config.min_length and eos is not None:
        procs.append(MinLengthLogitsProcessor(config.min_length, eos))
    if config.min_new_tokens and eos is not None:
        procs.append(MinNewTokensLengthLogitsProcessor(prompt_length, config.min_new_tokens, eos))
    if config.forced_bos_token_id is not None:
        procs.append(ForcedBOSTokenLogitsProcessor(config.forced_bos_token_id))
    if config.forced_eos_token_id is not None:
        assert config.max_length is not None
        procs.append(ForcedEOSTokenLogitsProcessor(config.max_length, config.forced_eos_token_id))
    if config.remove_invalid_values:
        procs.append(InfNanRemoveLogitsProcessor())
    if config.suppress_tokens is not None:
        procs.append(SuppressTokensLogitsProcessor(config.suppress_tokens))
    if config.begin_suppress_tokens is not None:
        begin = (
            prompt_length if (prompt_length > 1 or config.forced_bos_token_id is None) else prompt_length + 1
        )
        procs.append(SuppressTokensAtBeginLogitsProcessor(config.begin_suppress_tokens, begin))

    merged: list[Processor] = []
    custom = list(custom or [])
    for proc in procs:
        same = next((c for c in custom if type(c) is type(proc)), None)
        merged.append(same if same is not None else proc)
    merged += [c for c in custom if not any(c is m for m in merged)]

    if config.do_sample:
        # Beam sampling keeps one token more than there are EOS ids, so a beam can always continue.
        n_eos = len(_ids_tensor(eos)) if eos is not None else 1
        keep = n_eos + 1 if (config.num_beams or 1) > 1 else 1
        if config.temperature is not None and config.temperature != 1.0:
            merged.append(TemperatureLogitsWarper(config.temperature))
        if config.top_k:
            merged.append(TopKLogitsWarper(config.top_k, min_tokens_to_keep=keep))
        if config.top_p is not None and config.top_p < 1.0:
            merged.append(TopPLogitsWarper(config.top_p, min_tokens_to_keep=keep))
        if config.min_p is not None:
            merged.append(MinPLogitsWarper(config.min_p, min_tokens_to_keep=keep))
        if config.typical_p is not None and config.typical_p < 1.0:
            merged.append(TypicalLogitsWarper(config.typical_p, min_tokens_to_keep=keep))
    if config.renormalize_logits:
        merged.append(LogitNormalization())
    return LogitsProcessorList(merged)
