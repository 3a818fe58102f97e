"""The decoding loops as free functions (gpt-fast style): ``prefill``, ``decode_one_token``, ``sample``, and
``generate(model, input_ids, config)`` which runs greedy search, sampling, beam search or beam sampling.

``generate`` works on its own and is what ``model.generate(...)`` calls: it resolves ``config`` against the
model's ``generation_config`` and the global defaults, fills in the special tokens, and turns
``max_new_tokens`` into the final ``max_length`` (see :func:`._config.resolve_generation_config`). Before it
allocates anything it checks the prompt, the length and the memory the buffers need (see :mod:`._limits`).

``model`` is any causal LM with xf's forward signature (``input_ids, attention_mask, position_ids,
past_key_values, use_cache, cache_position, logits_to_keep``) returning an object with ``.logits``. Tokens live
in a preallocated ``(B, max_length)`` buffer, so no step concatenates; the only host syncs are the ones a
feature needs (EOS or custom stopping checks, streaming, ``max_time``). With a :class:`~xf_load.cache.StaticCache`
every decode step has the same shapes, so ``decode_one_token`` compiles once (``compile=True``).

Sampling draws without a host-device sync (gpt-fast's ``multinomial_sample_one_no_sync``): the exponential
race ``argmax(probs / E)``, ``E ~ Exp(1)`` drawn from the global RNG or ``generator``. It is the computation
``torch.multinomial(probs, 1)`` runs internally, so under the same seed it draws the very same tokens (and
stays token for token equal to transformers' seeded sampling), without multinomial's checks that read the
probabilities back to the host at every step. Those checks run once, after the loop: scores that were not a
distribution (NaN or +inf logits, or every token removed) raise then. Beam sampling keeps
``torch.multinomial``: beam search reads back to the host at every step anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from xf_core.errors import XfValueError
from xf_core.logging import get_logger

from ..cache import Cache, DynamicCache, StaticCache
from ._beam import beam_search
from ._compile import auto_compile, bucket_batch, bucket_length, compiled_step, step_key, step_options
from ._config import GenerationConfig, finalize_lengths, resolve_generation_config
from ._limits import check_generation_size, check_prompt
from ._outputs import GenerateBeamDecoderOnlyOutput, GenerateDecoderOnlyOutput
from ._processors import LogitsProcessorList, build_logits_processors
from ._seq2seq import is_encoder_decoder, prepare_encoder_decoder
from ._stopping import EosTokenCriteria, MaxTimeCriteria, StoppingCriteriaList, StopStringCriteria
from ._strategies import select_strategy

__all__ = ["decode_one_token", "generate", "invalid_rows", "prefill", "sample"]

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
    """Pick one token per row from processed ``scores`` ``(B, vocab)``: argmax, or a draw from softmax.

    The draw is ``torch.multinomial(probs, 1)`` without its host syncs (same tokens under the same seed);
    a row whose scores are not a distribution gets an arbitrary token: check with :func:`invalid_rows`.
    """
    if not do_sample:
        return scores.argmax(dim=-1)
    probs = scores.softmax(dim=-1)
    race = torch.empty_like(probs).exponential_(1, generator=generator)  # E ~ Exp(1), one per token
    return (probs / race).argmax(dim=-1)  # token i wins with probability probs[i]


def invalid_rows(scores: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: rows of ``scores`` whose softmax is not a distribution (a NaN or +inf, or all -inf)."""
    return ~scores.logsumexp(dim=-1).isfinite()


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
    input_ids: torch.Tensor | None,
    config: GenerationConfig | None = None,
    *,
    attention_mask: torch.Tensor | None = None,
    past_key_values: Cache | None = None,
    logits_processor: Sequence[Callable[..., torch.Tensor]] | None = None,
    stopping_criteria: Sequence[Callable[..., Any]] | None = None,
    streamer: Any = None,
    tokenizer: Any = None,
    compile: bool | str | dict[str, Any] = False,
    generator: torch.Generator | None = None,
    assistant_model: torch.nn.Module | None = None,
    **model_kwargs: Any,
) -> torch.Tensor | GenerateDecoderOnlyOutput | GenerateBeamDecoderOnlyOutput:
    """Generate after ``input_ids`` ``(B, L)`` (``None``: start from ``bos_token_id``), as
    ``model.generate(input_ids, generation_config=config, ...)`` does.

    ``config`` holds the settings of this call; the fields it leaves ``None`` come from
    ``model.generation_config`` (or the special tokens of ``model.config``), then from the global defaults.
    It is not modified. ``input_ids`` and ``attention_mask`` are moved to the model's device.

    Returns the ``(B * num_return_sequences, L + new)`` token tensor, or an output object when
    ``config.return_dict_in_generate``. Extra ``model_kwargs`` reach the prefill forward only (the decode step

    ``compile=True`` compiles the decode step over a static cache whose length and batch are bucketed (see
    :mod:`._compile`; compiled kernels persist in ``$XF_COMPILE_CACHE``); a dict passes extra
    ``torch.compile`` arguments; ``"auto"`` compiles when the job pays for it (:func:`._compile.should_compile`).
    has a fixed signature so that it compiles). ``assistant_model`` (a draft model), ``prompt_lookup_num_tokens``,
    and ``num_beam_groups`` select the loops of :mod:`._strategies`.
    """
    config = resolve_generation_config(model, config)
    device = _device(model)
    loop_model = (
        model  # what the loop calls: the model, or an encoder-decoder's decoder bound to its encoding
    )
    encoder_decoder = is_encoder_decoder(model)
    if encoder_decoder:
        if past_key_values is not None:
            raise XfValueError(
                "past_key_values cannot be passed to an encoder-decoder's generate(); xf runs the encoder and "
                "builds the decoder's caches itself."
            )
        rows_per_prompt = max(config.num_beams or 1, config.num_return_sequences or 1)
        loop_model, input_ids = prepare_encoder_decoder(
            model,
            input_ids,
            attention_mask,
            config,
            model_kwargs,
            rows_per_prompt=rows_per_prompt,
            device=device,
        )
        attention_mask = None  # the decoder's start ids are not padded
    if input_ids is None:
        if config.bos_token_id is None:
            raise XfValueError("generate() needs input_ids, or a bos_token_id to start from.")
        input_ids = torch.full((1, 1), config.bos_token_id, dtype=torch.long, device=device)
    if input_ids.dim() != 2:
        raise XfValueError(f"input_ids must be (batch, length); got shape {tuple(input_ids.shape)}.")
    input_ids = input_ids.to(device)
    check_prompt(model, input_ids)
    B, L = input_ids.shape
    config = finalize_lengths(config, prompt_length=L, model=model)
    assert config.max_length is not None and config.num_beams is not None  # resolved above
    num_beams = config.num_beams
    n_return = config.num_return_sequences or 1
    if config.max_length <= L:
        raise XfValueError(
            f"input_ids has length {L} but max_length is {config.max_length}; "
            "set max_new_tokens (or a larger max_length)."
        )
    check_generation_size(model, config, batch_size=B, prompt_length=L)
    strategy = select_strategy(
        model,
        config,
        assistant_model=assistant_model,
        device=device,
        batch_size=B,
        compile=bool(compile),
        encoder_decoder=encoder_decoder,
        has_cache=bool(config.use_cache) or past_key_values is not None,
    )
    if streamer is not None and num_beams > 1:
        raise XfValueError("streamer cannot be used with beam search (num_beams > 1); use num_beams=1.")

    eos = _eos_tensor(config.eos_token_id, device)
    pad = config.pad_token_id
    if pad is None and eos is not None:
        pad = int(eos[0])

    if attention_mask is None:
        # (an encoder-decoder's decoder start id is often the pad id itself: never a padding there)
        attention_mask = (
            torch.ones_like(input_ids) if encoder_decoder else _infer_attention_mask(input_ids, pad, eos)
        )
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

    if compile == "auto":
        compile = auto_compile(
            loop_model, config, past_key_values, rows, L, padded, num_beams, encoder_decoder
        )
    elif isinstance(compile, str):
        raise XfValueError(
            f"compile={compile!r}: pass True, False, 'auto' or a dict of torch.compile arguments."
        )
    # Buckets (see ._compile): greedy/sampling of a decoder-only model pads its batch, beams do not.
    pad_rows = bool(compile) and num_beams == 1 and not encoder_decoder
    cache, past_length = _prepare_cache(
        config, past_key_values, rows, input_ids, compile=bool(compile), pad_rows=pad_rows
    )
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

    step_fn: StepFn = decode_one_token
    if compile:
        options = step_options(loop_model, {} if compile is True else compile)
        assert isinstance(cache, StaticCache)
        key = step_key(
            loop_model,
            rows=_cache_batch(cache, rows),
            cache_len=cache.max_cache_len,
            padded=padded,
            options=options,
        )
        step_fn = compiled_step(loop_model, options, key)
    positions = torch.arange(config.max_length, device=device)
    inputs = _Inputs(loop_model, mask_buf, position_ids, cache, past_length, model_kwargs, step_fn, positions)

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
    with torch.no_grad():  # not inference_mode: the ids and caches returned must stay trainable (RL)
        if strategy is not None:
            return strategy(inputs, input_ids, config, processors, criteria, eos, pad, streamer, B, generator)
        if num_beams > 1:
            return beam_search(inputs, input_ids, config, processors, criteria, eos, pad, B, generator)
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
    do_sample = bool(config.do_sample)
    # Rows that were sampled from scores that are not a distribution: read once, after the loop.
    invalid = torch.zeros(rows, dtype=torch.bool, device=input_ids.device) if do_sample else None

    cur_len = L
    logits = inputs.prefill(input_ids)
    while True:
        scores = processors(sequences[:, :cur_len], logits) if processors else logits
        if want_scores:
            scores_out.append(scores)
        if want_logits:
            logits_out.append(logits)
        next_tokens = sample(scores, do_sample=do_sample, generator=generator)
        if invalid is not None:
            invalid |= invalid_rows(scores)
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
    if invalid is not None and bool(invalid.any()):
        raise XfValueError(
            f"sampling met scores that are not a probability distribution (NaN or +inf, or every token at -inf) "
            f"in rows {invalid.nonzero().flatten().tolist()}: the model's logits overflowed (try float32 or "
            "bfloat16) or the logits processors removed every token; remove_invalid_values=True replaces "
            "NaN/inf scores."
        )
    sequences = sequences[:, :cur_len]
    if not config.return_dict_in_generate:
        return sequences
    return GenerateDecoderOnlyOutput(
        sequences=sequences,
        scores=tuple(scores_out) if want_scores else None,
        logits=tuple(logits_out) if want_logits else None,
        past_key_values=inputs.cache,
        compile_time=getattr(inputs.step_fn, "compile_seconds", None),
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
    pad_rows: bool = False,
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
        if not compile:
            return StaticCache(max_cache_len=config.max_length, max_batch_size=rows), 0
        length = bucket_length(config.max_length)
        if pad_rows:
            return StaticCache(max_cache_len=length, max_batch_size=bucket_batch(rows), pad_batch=True), 0
        return StaticCache(max_cache_len=length, max_batch_size=rows), 0
    return DynamicCache(), 0


def _cache_batch(cache: StaticCache, rows: int) -> int:
    return cache.max_batch_size if cache.pad_batch and cache.max_batch_size is not None else rows


def _device(model: Any) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    return next(model.parameters()).device
