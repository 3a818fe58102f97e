"""The decoding loops as free functions (gpt-fast style): ``prefill``, ``decode_one_token``, ``sample``, and
``generate(model, input_ids, config)`` which runs greedy search, sampling, beam search or beam sampling.

``model`` is any causal LM with xf's forward signature (``input_ids, attention_mask, position_ids,
past_key_values, use_cache, cache_position, logits_to_keep``) returning an object with ``.logits``. Tokens live
in a preallocated ``(B, max_length)`` buffer, so no step concatenates; the only host syncs are the ones a
feature needs (EOS or custom stopping checks, streaming, ``max_time``). With a :class:`~xf_load.cache.StaticCache`
every decode step has the same shapes, so ``decode_one_token`` compiles once (``compile=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from xf_core.errors import XfValueError
from xf_core.logging import get_logger

from ..cache import Cache, DynamicCache, StaticCache
from ._config import GenerationConfig
from ._outputs import GenerateBeamDecoderOnlyOutput, GenerateDecoderOnlyOutput
from ._processors import LogitsProcessorList, build_logits_processors
from ._stopping import EosTokenCriteria, MaxTimeCriteria, StoppingCriteriaList, StopStringCriteria

__all__ = ["decode_one_token", "generate", "prefill", "sample"]

logger = get_logger(__name__)

StepFn = Callable[..., torch.Tensor]


# ---------------------------------------------------------------------------------------------- the pieces


def prefill(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    cache: Cache | None,
    cache_position: torch.Tensor,
    **model_kwargs: Any,
) -> torch.Tensor:
    """Run the prompt through the model; return the next-token logits ``(B, vocab)`` in float32."""
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        past_key_values=cache,
        use_cache=cache is not None,
        cache_position=cache_position,
        logits_to_keep=1,
        **model_kwargs,
    )
    return out.logits[:, -1, :].to(dtype=torch.float32, copy=True)


def decode_one_token(
    model: torch.nn.Module,
    token: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    cache: Cache,
    cache_position: torch.Tensor,
) -> torch.Tensor:
    """One cached step: ``token`` is ``(B, 1)``; return the next-token logits ``(B, vocab)`` in float32.

    With a static cache all inputs keep their shapes from step to step, so this compiles to one graph.
    """
    out = model(
        input_ids=token,
        attention_mask=attention_mask,
        position_ids=position_ids,
        past_key_values=cache,
        use_cache=True,
        cache_position=cache_position,
        logits_to_keep=1,
    )
    return out.logits[:, -1, :].float()


def sample(
    scores: torch.Tensor, *, do_sample: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Pick one token per row from processed ``scores`` ``(B, vocab)``: argmax, or a draw from softmax."""
    if not do_sample:
        return scores.argmax(dim=-1)
    probs = scores.softmax(dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)


# ---------------------------------------------------------------------------------------------- state


@dataclass
class _Inputs:
    """What every forward of one generate call shares: masks, positions and the cache."""

    model: torch.nn.Module
    attention_mask: torch.Tensor | None  # (B, mask_len) of 0/1, or None when nothing is padded
    position_ids: torch.Tensor | None  # (B, L) for the prompt, or None when positions == cache positions
    cache: Cache | None
    past_length: int
    model_kwargs: dict[str, Any]
    step_fn: StepFn
    positions: torch.Tensor  # arange(max_length): cache positions are slices of it, not new tensors

    def prefill(self, input_ids: torch.Tensor) -> torch.Tensor:
        L = input_ids.shape[1]
        cache_position = torch.arange(self.past_length, L, device=input_ids.device)
        return prefill(
            self.model,
            input_ids[:, self.past_length :],
            attention_mask=self._mask(L),
            position_ids=None if self.position_ids is None else self.position_ids[:, self.past_length : L],
            cache=self.cache,
            cache_position=cache_position,
            **self.model_kwargs,
        )

    def step(self, sequences: torch.Tensor, cur_len: int) -> torch.Tensor:
        """Logits for the token after ``sequences[:, :cur_len]``, whose last token is not cached yet."""
        if self.cache is None:  # use_cache=False: the whole sequence again
            return prefill(
                self.model,
                sequences[:, :cur_len],
                attention_mask=self._mask(cur_len),
                position_ids=None if self.position_ids is None else self.position_ids[:, :cur_len],
                cache=None,
                cache_position=torch.arange(cur_len, device=sequences.device),
                **self.model_kwargs,
            )
        cache_position = self.positions[cur_len - 1 : cur_len]
        position_ids = None if self.position_ids is None else self.position_ids[:, cur_len - 1 : cur_len]
        logits = self.step_fn(
            self.model,
            sequences[:, cur_len - 1 : cur_len],
            attention_mask=self._mask(cur_len),
            position_ids=position_ids,
            cache=self.cache,
            cache_position=cache_position,
        )
        if self.step_fn is not decode_one_token:
            # A CUDA-graphed step reuses its output memory on the next replay: keep a copy.
            logits = logits.clone()
            if isinstance(self.cache, StaticCache):
                # The compiled step traced the cache's position counter away; count the write here.
                self.cache.advance(1)
        return logits

    def _mask(self, length: int) -> torch.Tensor | None:
        if self.attention_mask is None:
            return None
        if isinstance(self.cache, StaticCache):
            return self.attention_mask  # full cache length: same shape every step
        return self.attention_mask[:, :length]

    def reorder(self, beam_idx: torch.Tensor) -> None:
        if self.cache is None:
            return
        reorder = getattr(self.cache, "reorder", None)
        if reorder is None:
            raise XfValueError(
                f"{type(self.cache).__name__} cannot be reordered, so beam search cannot use it; "
                "pass a DynamicCache or StaticCache, or use_cache=False."
            )
        reorder(beam_idx)


# ---------------------------------------------------------------------------------------------- entry


def generate(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    config: GenerationConfig,
    *,
    attention_mask: torch.Tensor | None = None,
    past_key_values: Cache | None = None,
    logits_processor: Sequence[Callable[..., torch.Tensor]] | None = None,
    stopping_criteria: Sequence[Callable[..., Any]] | None = None,
    streamer: Any = None,
    tokenizer: Any = None,
    compile: bool | dict[str, Any] = False,
    generator: torch.Generator | None = None,
    **model_kwargs: Any,
) -> torch.Tensor | GenerateDecoderOnlyOutput | GenerateBeamDecoderOnlyOutput:
    """Generate from ``input_ids`` ``(B, L)`` with a fully resolved ``config`` (see ``GenerationMixin.generate``,
    which resolves it: ``max_length`` final, defaults filled in).

    Returns the ``(B * num_return_sequences, L + new)`` token tensor, or an output object when
    ``config.return_dict_in_generate``. Extra ``model_kwargs`` reach the prefill forward only (the decode step
    has a fixed signature so that it compiles).
    """
    if input_ids.dim() != 2:
        raise XfValueError(f"input_ids must be (batch, length); got shape {tuple(input_ids.shape)}.")
    assert config.max_length is not None and config.num_beams is not None
    device = input_ids.device
    B, L = input_ids.shape
    num_beams = config.num_beams
    n_return = config.num_return_sequences or 1
    if config.max_length <= L:
        raise XfValueError(
            f"input_ids has length {L} but max_length is {config.max_length}; "
            "set max_new_tokens (or a larger max_length)."
        )
    if streamer is not None and num_beams > 1:
        raise XfValueError("streamer cannot be used with beam search (num_beams > 1); use num_beams=1.")

    eos = _eos_tensor(config.eos_token_id, device)
    pad = config.pad_token_id
    if pad is None and eos is not None:
        pad = int(eos[0])

    if attention_mask is None:
        attention_mask = _infer_attention_mask(input_ids, pad, eos)
    elif attention_mask.shape != input_ids.shape:
        raise XfValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has {tuple(input_ids.shape)}; "
            "pass the mask the tokenizer returned with these ids."
        )
    attention_mask = attention_mask.to(device=device, dtype=torch.long)

    # Expand each prompt for beams / several samples.
    expand = max(num_beams, n_return)
    if expand > 1:
        input_ids = input_ids.repeat_interleave(expand, dim=0)
        attention_mask = attention_mask.repeat_interleave(expand, dim=0)
    rows = input_ids.shape[0]
    padded = bool((attention_mask == 0).any())

    # Positions follow the real tokens: a left-padded row starts at 0 at its first real token.
    position_ids = None
    if padded:
        position_ids = _position_ids(attention_mask, config.max_length)

    cache, past_length = _prepare_cache(config, past_key_values, rows, input_ids, compile=bool(compile))
    if compile and not isinstance(cache, StaticCache):
        raise XfValueError(
            "compile=True needs fixed shapes, so a StaticCache: pass past_key_values=StaticCache(...) or none "
            f"(generate then makes one), not a {type(cache).__name__}."
        )
    mask_buf = None
    if padded:
        mask_len = cache.max_cache_len if isinstance(cache, StaticCache) else config.max_length
        mask_buf = torch.ones(rows, mask_len, dtype=torch.long, device=device)
        mask_buf[:, :L] = attention_mask

    step_fn = _compiled_step(model, {} if compile is True else compile) if compile else decode_one_token
    positions = torch.arange(config.max_length, device=device)
    inputs = _Inputs(model, mask_buf, position_ids, cache, past_length, model_kwargs, step_fn, positions)

    padding_lengths = attention_mask.argmax(dim=1) if padded else None
    processors = build_logits_processors(
        config, prompt_length=L, padding_lengths=padding_lengths, custom=logits_processor
    )
    criteria = StoppingCriteriaList()
    if config.max_time is not None:
        criteria.append(MaxTimeCriteria(config.max_time))
    if config.stop_strings is not None:
        if tokenizer is None:
            raise XfValueError(
                "stop_strings need a tokenizer to decode the tokens: pass tokenizer=... to generate()."
            )
        criteria.append(StopStringCriteria(tokenizer, config.stop_strings))
    if eos is not None:
        criteria.append(EosTokenCriteria(eos))
    criteria.extend(stopping_criteria or [])

    if streamer is not None:
        streamer.put(input_ids.cpu())
    with torch.no_grad():
        if num_beams > 1:
            return _beam_search(inputs, input_ids, config, processors, criteria, eos, pad, B, generator)
        return _sample_loop(inputs, input_ids, config, processors, criteria, eos, pad, streamer, generator)


# ---------------------------------------------------------------------------------------------- greedy / sample


def _sample_loop(
    inputs: _Inputs,
    input_ids: torch.Tensor,
    config: GenerationConfig,
    processors: LogitsProcessorList,
    criteria: StoppingCriteriaList,
    eos: torch.Tensor | None,
    pad: int | None,
    streamer: Any,
    generator: torch.Generator | None,
) -> torch.Tensor | GenerateDecoderOnlyOutput:
    rows, L = input_ids.shape
    max_length = config.max_length
    assert max_length is not None
    want_scores = bool(config.return_dict_in_generate and config.output_scores)
    want_logits = bool(config.return_dict_in_generate and config.output_logits)
    scores_out: list[torch.Tensor] = []
    logits_out: list[torch.Tensor] = []

    sequences = torch.full(
        (rows, max_length), pad if pad is not None else 0, dtype=input_ids.dtype, device=input_ids.device
    )
    sequences[:, :L] = input_ids
    unfinished = torch.ones(rows, dtype=torch.bool, device=input_ids.device)
    has_eos = eos is not None
    check_stop = len(criteria) > 0
    # The usual case, EOS as the only criterion, is one isin on the new tokens.
    only_eos = has_eos and len(criteria) == 1 and isinstance(criteria[0], EosTokenCriteria)

    cur_len = L
    logits = inputs.prefill(input_ids)
    while True:
        scores = processors(sequences[:, :cur_len], logits) if processors else logits
        if want_scores:
            scores_out.append(scores)
        if want_logits:
            logits_out.append(logits)
        next_tokens = sample(scores, do_sample=bool(config.do_sample), generator=generator)
        if has_eos:
            next_tokens = torch.where(unfinished, next_tokens, pad)
        sequences[:, cur_len] = next_tokens
        cur_len += 1
        if streamer is not None:
            streamer.put(next_tokens.cpu())
        if only_eos:
            unfinished &= ~torch.isin(next_tokens, eos)
            if not bool(unfinished.any()):
                break
        elif check_stop:
            unfinished &= ~criteria(sequences[:, :cur_len], tuple(scores_out) if want_scores else None)
            if not bool(unfinished.any()):
                break
        if cur_len >= max_length:
            break
        logits = inputs.step(sequences, cur_len)

    if streamer is not None:
        streamer.end()
    sequences = sequences[:, :cur_len]
    if not config.return_dict_in_generate:
        return sequences
    return GenerateDecoderOnlyOutput(
        sequences=sequences,
        scores=tuple(scores_out) if want_scores else None,
        logits=tuple(logits_out) if want_logits else None,
        past_key_values=inputs.cache,
    )


# ---------------------------------------------------------------------------------------------- beam search


def _gather_beams(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Select along dim 1 (beams): ``tensor`` (B, K, ...), ``index`` (B, N) -> (B, N, ...)."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def _beam_search(
    inputs: _Inputs,
    input_ids: torch.Tensor,
    config: GenerationConfig,
    processors: LogitsProcessorList,
    criteria: StoppingCriteriaList,
    eos: torch.Tensor | None,
    pad: int | None,
    batch_size: int,
    generator: torch.Generator | None,
) -> torch.Tensor | GenerateBeamDecoderOnlyOutput:
    """Vectorised beam search (and beam sampling), step for step the algorithm transformers runs.

    Each step scores every (beam, token) continuation, keeps the top K = max(2, 1 + n_eos) * num_beams, moves
    those that hit a stopping criterion to the finished set (scored with the length penalty), and continues
    with the best ``num_beams`` that did not. It stops when no running beam can beat the finished ones.
    """
    device = input_ids.device
    num_beams = config.num_beams or 1
    max_length = config.max_length
    assert max_length is not None
    length_penalty = config.length_penalty if config.length_penalty is not None else 1.0
    early_stopping = config.early_stopping
    do_sample = bool(config.do_sample)
    B, nb = batch_size, num_beams
    cur_len = prompt_len = input_ids.shape[1]
    n_eos = eos.shape[0] if eos is not None else 0
    K = max(2, 1 + n_eos) * nb
    top_nb_mask = torch.arange(K, device=device) < nb
    want_scores = bool(config.return_dict_in_generate and config.output_scores)
    want_logits = bool(config.return_dict_in_generate and config.output_logits)
    scores_out: list[torch.Tensor] = []
    logits_out: list[torch.Tensor] = []

    fill = (pad if pad else int(eos[0])) if eos is not None else -1
    running = torch.full((B, nb, max_length), fill, dtype=torch.long, device=device)
    running[:, :, :cur_len] = input_ids.view(B, nb, cur_len)
    finished = running.clone()
    running_scores = torch.zeros(B, nb, device=device)
    running_scores[:, 1:] = -1e9  # only the first beam of each prompt is live at the start
    finished_scores = torch.full((B, nb), -1e9, device=device)
    is_finished = torch.zeros(B, nb, dtype=torch.bool, device=device)
    can_improve = torch.ones(B, 1, dtype=torch.bool, device=device)
    running_beam_idx = torch.full((B, nb, max_length - cur_len), -1, dtype=torch.int32, device=device)
    finished_beam_idx = running_beam_idx.clone()

    logits = inputs.prefill(input_ids)
    while True:
        flat_running = running[:, :, :cur_len].reshape(B * nb, cur_len)
        log_probs = processors(flat_running, logits.log_softmax(dim=-1))
        if want_logits:
            logits_out.append(logits.clone())
        if want_scores:
            scores_out.append(log_probs.clone())
        vocab = log_probs.shape[-1]
        accumulated = (log_probs.view(B, nb, vocab) + running_scores[:, :, None]).view(B, nb * vocab)

        # Top-K continuations over all beams of each prompt (or K draws without replacement).
        if do_sample:
            top_idx = torch.multinomial(accumulated.softmax(dim=-1), num_samples=K, generator=generator)
            top_lp = accumulated.gather(1, top_idx)
            top_lp, order = top_lp.sort(dim=-1, descending=True)
            top_idx = top_idx.gather(-1, order)
        else:
            top_lp, top_idx = torch.topk(accumulated, k=K)
        from_beam = top_idx // vocab
        top_seqs = _gather_beams(running, from_beam)
        top_seqs[:, :, cur_len] = top_idx % vocab
        top_beam_idx = _gather_beams(running_beam_idx, from_beam)
        top_beam_idx[:, :, cur_len - prompt_len] = (
            from_beam + torch.arange(B, device=device)[:, None] * nb
        ).to(top_beam_idx.dtype)

        # Which continuations are done (EOS, custom criteria, or the length limit).
        hits = criteria(top_seqs[:, :, : cur_len + 1].reshape(B * K, cur_len + 1), tuple(scores_out) or None)
        hits = hits.view(B, K)
        if cur_len + 1 >= max_length:
            hits = torch.ones_like(hits)

        # Running beams for the next step: the best nb continuations that are not done.
        live_lp = top_lp + hits.to(torch.float32) * -1.0e9
        keep = torch.topk(live_lp, k=nb)[1]
        running = _gather_beams(top_seqs, keep)
        running_scores = _gather_beams(live_lp, keep)
        running_beam_idx = _gather_beams(top_beam_idx, keep)

        # Finished beams: merge the done continuations among the top nb into the finished set.
        just_done = hits & top_nb_mask[None, :]
        done_lp = top_lp / ((cur_len + 1 - prompt_len) ** length_penalty)
        full = is_finished.all(dim=-1, keepdim=True) & (early_stopping is True)
        done_lp = done_lp + full.to(torch.float32) * -1.0e9
        done_lp = done_lp + (~can_improve).to(torch.float32) * -1.0e9
        done_lp = done_lp + (~just_done) * -1.0e9
        merged_lp = torch.cat((finished_scores, done_lp), dim=1)
        best = torch.topk(merged_lp, k=nb)[1]
        finished = _gather_beams(torch.cat((finished, top_seqs), dim=1), best)
        finished_scores = _gather_beams(merged_lp, best)
        finished_beam_idx = _gather_beams(torch.cat((finished_beam_idx, top_beam_idx), dim=1), best)
        is_finished = _gather_beams(torch.cat((is_finished, just_done), dim=1), best)

        inputs.reorder(running_beam_idx[..., cur_len - prompt_len].reshape(B * nb).long())
        cur_len += 1

        # Can a running beam still beat the worst finished one? (transformers' heuristic)
        if early_stopping == "never" and length_penalty > 0.0:
            best_len = max_length - prompt_len
        else:
            best_len = cur_len - prompt_len
        best_running = running_scores[:, :1] / (best_len**length_penalty)
        worst_done = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True)[0], -1.0e9)
        can_improve = can_improve & (best_running > worst_done).any(dim=-1, keepdim=True)

        open_beams = not (bool(is_finished.all()) and early_stopping is True)
        if not (bool(can_improve.any()) and open_beams and not bool(hits.all())):
            break
        logits = inputs.step(running.view(B * nb, max_length), cur_len)

    n_return = config.num_return_sequences or 1
    sequences = finished[:, :n_return].reshape(B * n_return, max_length)
    seq_scores = finished_scores[:, :n_return].reshape(B * n_return)
    beam_indices = finished_beam_idx[:, :n_return].reshape(B * n_return, -1)
    generated = int((beam_indices + 1).bool().sum(dim=1).max())
    sequences = sequences[:, : prompt_len + generated]
    beam_indices = beam_indices[:, :generated]
    if not config.return_dict_in_generate:
        return sequences
    return GenerateBeamDecoderOnlyOutput(
        sequences=sequences,
        sequences_scores=seq_scores if config.output_scores else None,
        scores=tuple(scores_out) if want_scores else None,
        logits=tuple(logits_out) if want_logits else None,
        beam_indices=beam_indices.long(),
        past_key_values=inputs.cache,
    )


# ---------------------------------------------------------------------------------------------- helpers


def _eos_tensor(eos: int | list[int] | None, device: torch.device) -> torch.Tensor | None:
    if eos is None:
        return None
    ids = [eos] if isinstance(eos, int) else list(eos)
    return torch.tensor(ids, dtype=torch.long, device=device) if ids else None


def _infer_attention_mask(input_ids: torch.Tensor, pad: int | None, eos: torch.Tensor | None) -> torch.Tensor:
    """Without a mask: pad tokens are masked when the pad id is in the prompt and is not also an EOS id."""
    ones = torch.ones_like(input_ids, dtype=torch.long)
    if pad is None:
        return ones
    if eos is not None and bool((eos == pad).any()):
        return ones
    if not bool((input_ids == pad).any()):
        return ones
    return (input_ids != pad).long()


def _position_ids(attention_mask: torch.Tensor, max_length: int) -> torch.Tensor:
    """(rows, max_length) positions: the prompt's from the mask (pads at 0), then +1 per new token."""
    prompt = attention_mask.cumsum(-1) - 1
    prompt = prompt.masked_fill(attention_mask == 0, 0)
    L = attention_mask.shape[1]
    tail = prompt[:, -1:] + torch.arange(1, max_length - L + 1, device=attention_mask.device)
    return torch.cat([prompt, tail], dim=1)


def _prepare_cache(
    config: GenerationConfig,
    past_key_values: Cache | None,
    rows: int,
    input_ids: torch.Tensor,
    *,
    compile: bool,
) -> tuple[Cache | None, int]:
    assert config.max_length is not None
    if past_key_values is not None:
        if not isinstance(past_key_values, Cache):
            raise XfValueError(
                f"past_key_values must be an xf_load.cache.Cache (DynamicCache or StaticCache), "
                f"not {type(past_key_values).__name__}."
            )
        past = past_key_values.get_seq_length()
        if past >= input_ids.shape[1]:
            raise XfValueError(
                f"past_key_values already holds {past} positions but input_ids has only {input_ids.shape[1]}; "
                "pass the full sequence (cached tokens followed by at least one new token)."
            )
        if isinstance(past_key_values, StaticCache) and past_key_values.max_cache_len < config.max_length:
            raise XfValueError(
                f"the StaticCache passed in holds {past_key_values.max_cache_len} positions but this call may "
                f"need max_length={config.max_length}; pass a longer cache or fewer max_new_tokens."
            )
        return past_key_values, past
    if not config.use_cache:
        if compile:
            raise XfValueError("compile=True needs the KV cache; do not pass use_cache=False with it.")
        return None, 0
    if config.cache_implementation == "static" or compile:
        if compile and config.cache_implementation == "dynamic":
            raise XfValueError(
                "compile=True needs a static cache (fixed shapes); drop cache_implementation='dynamic'."
            )
        return StaticCache(max_cache_len=config.max_length, max_batch_size=rows), 0
    return DynamicCache(), 0


_COMPILED: dict[str, StepFn] = {}


def _compiled_step(model: torch.nn.Module, options: dict[str, Any]) -> StepFn:
    """``decode_one_token`` compiled as one full graph, so a graph break is an error, not a slowdown.

    Default: inductor, with CUDA graphs on GPU (``mode="reduce-overhead"``); ``options`` are extra
    ``torch.compile`` arguments (``backend``, ``mode``, ...). Compiled once per options; dynamo guards per model.
    """
    device = next(model.parameters()).device
    options = {"mode": "reduce-overhead"} if device.type == "cuda" and not options else dict(options)
    key = repr(sorted(options.items()))
    if key not in _COMPILED:
        _COMPILED[key] = torch.compile(decode_one_token, fullgraph=True, dynamic=False, **options)
    return _COMPILED[key]
