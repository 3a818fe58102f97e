"""Encoder-decoder generation on the decoder-only loop: the encoder runs once, then the decoder is driven by the
same ``prefill`` / ``decode_one_token`` / beam search as a causal LM.

:func:`prepare_encoder_decoder` runs the encoder over the prompt, builds the decoder's start ids
(``decoder_start_token_id``, else ``bos_token_id``; transformers' rule, including prepending it to
``decoder_input_ids`` that do not start with it) and returns a :class:`DecoderStep`: a module with a causal LM's
forward signature whose input ids are the decoder's, and which adds the encoder output, the encoder padding
mask and the cross-attention cache to every call. Everything downstream (processors, stopping, caches,
``compile=True``) sees a plain causal LM over the decoder ids, and ``max_length``/``max_new_tokens`` count
decoder tokens, as in transformers.

The cross-attention keys and values are computed at the first decoder forward and kept in an
:class:`~xf_load.cache.EncoderDecoderCache` that wraps the loop's self-attention cache (dynamic or static).
Beam search reorders only the self-attention cache: the rows of one prompt share one encoder output, so their
cross-attention rows are equal and any reordering within a prompt leaves them as they are. A model whose
class sets ``shares_encoder_rows`` (T5, BART) goes further: its cross-attention lets the beams (or samples) of
a prompt read one encoder row, so the encoder output is not repeated per beam, and the cross-attention keys and
values are projected and stored once per prompt (transformers projects them for every beam).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from xf_core.errors import XfValueError

from ..cache import Cache, EncoderDecoderCache
from ._config import GenerationConfig

__all__ = ["DecoderStep", "is_encoder_decoder", "prepare_encoder_decoder"]


def is_encoder_decoder(model: Any) -> bool:
    """True for a model whose config says it is an encoder-decoder (T5, BART)."""
    return bool(getattr(getattr(model, "config", None), "is_encoder_decoder", False))


class DecoderStep(nn.Module):
    """``model``'s decoder as a causal LM over the decoder ids, bound to one encoder output: one row per row of
    the loop (prompts x beams or samples), or one per prompt when the model ``shares_encoder_rows``."""

    def __init__(
        self, model: nn.Module, encoder_states: torch.Tensor, encoder_mask: torch.Tensor | None
    ) -> None:
        super().__init__()
        self.model = model
        self.config = model.config
        self.encoder_states = encoder_states  # (rows or prompts, S, C)
        self.encoder_mask = encoder_mask  # (rows or prompts, 1, 1, S) boolean, or None when nothing is padded
        self.cache: EncoderDecoderCache | None = None

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values: Cache | None = None,
        use_cache: bool = True,
        cache_position: torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **model_kwargs: Any,
    ) -> Any:
        cache = None
        if past_key_values is not None:
            if self.cache is None or self.cache.self_attention_cache is not past_key_values:
                self.cache = EncoderDecoderCache(past_key_values)
            cache = self.cache
        return self.model(
            encoder_outputs=(self.encoder_states,),
            attention_mask=self.encoder_mask,
            decoder_input_ids=input_ids,
            decoder_attention_mask=attention_mask,
            past_key_values=cache,
            use_cache=use_cache,
            cache_position=cache_position,
            logits_to_keep=logits_to_keep,
            **model_kwargs,
        )


def prepare_encoder_decoder(
    model: nn.Module,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    config: GenerationConfig,
    model_kwargs: dict[str, Any],
    *,
    rows_per_prompt: int,
    device: torch.device,
) -> tuple[DecoderStep, torch.Tensor]:
    """Run the encoder over ``input_ids`` ``(B, S)`` (``attention_mask`` marks padding; inferred from
    ``pad_token_id`` when not given, as transformers does) and return the decoder step and the decoder's
    start ids ``(B, L)``. ``decoder_input_ids``, ``decoder_attention_mask`` and ``encoder_outputs`` are
    taken out of ``model_kwargs``."""
    encoder_outputs = model_kwargs.pop("encoder_outputs", None)
    decoder_input_ids = model_kwargs.pop("decoder_input_ids", None)
    if "decoder_attention_mask" in model_kwargs:
        raise XfValueError(
            "decoder_attention_mask is not supported by xf's generate (the decoder inputs are not padded); "
            "pass decoder_input_ids of equal length."
        )
    if encoder_outputs is None:
        if input_ids is None:
            raise XfValueError(
                f"{type(model).__name__} is an encoder-decoder: generate() needs the encoder's input_ids "
                "(the tokenized source text)."
            )
        if input_ids.dim() != 2:
            raise XfValueError(f"input_ids must be (batch, length); got shape {tuple(input_ids.shape)}.")
        input_ids = input_ids.to(device)
        if attention_mask is None:
            pad = config.pad_token_id
            if pad is not None and bool((input_ids == pad).any()):
                attention_mask = (input_ids != pad).long()
        elif attention_mask.shape != input_ids.shape:
            raise XfValueError(
                f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has "
                f"{tuple(input_ids.shape)}; pass the mask the tokenizer returned with these ids."
            )
        if attention_mask is not None:
            attention_mask = attention_mask.to(device=device, dtype=torch.long)
        encoder = model.get_encoder()  # type: ignore[operator]
        states = encoder(input_ids, attention_mask=attention_mask).last_hidden_state
    else:
        states = (
            encoder_outputs[0] if isinstance(encoder_outputs, tuple) else encoder_outputs.last_hidden_state
        )
        if attention_mask is not None:
            attention_mask = attention_mask.to(device=device, dtype=torch.long)
    B = states.shape[0]

    start = (
        config.decoder_start_token_id if config.decoder_start_token_id is not None else config.bos_token_id
    )
    if start is None:
        raise XfValueError(
            f"{type(model).__name__} needs a decoder_start_token_id to start decoding from: set it in the "
            "generation config (or config.json), or pass decoder_input_ids."
        )
    starts = torch.full((B, 1), start, dtype=torch.long, device=device)
    if decoder_input_ids is None:
        decoder_input_ids = starts
    else:
        decoder_input_ids = decoder_input_ids.to(device)
        if decoder_input_ids.dim() != 2 or decoder_input_ids.shape[0] != B:
            raise XfValueError(
                f"decoder_input_ids has shape {tuple(decoder_input_ids.shape)}; it needs one row per prompt "
                f"({B})."
            )
        if decoder_input_ids.shape[1] == 0 or bool((decoder_input_ids[:, 0] != start).any()):
            decoder_input_ids = torch.cat([starts, decoder_input_ids], dim=1)

    if attention_mask is not None and bool(attention_mask.all()):
        attention_mask = None  # nothing padded: the attention can take its fastest path
    if rows_per_prompt > 1 and not getattr(model, "shares_encoder_rows", False):
        states = states.repeat_interleave(rows_per_prompt, dim=0)
        if attention_mask is not None:
            attention_mask = attention_mask.repeat_interleave(rows_per_prompt, dim=0)
    if attention_mask is not None:  # the cross-attention mask, made once: (rows, 1, 1, S), True = visible
        attention_mask = attention_mask[:, None, None, :].to(torch.bool)
    return DecoderStep(model, states, attention_mask), decoder_input_ids
