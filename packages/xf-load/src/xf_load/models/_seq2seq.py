"""What T5 and BART share as encoder-decoders: building the decoder inputs from labels, one forward that runs
the encoder (unless its output is given) and then the decoder over it, and cross-attention over an encoder
output that several decoder rows share (generate's beams or samples of one prompt)."""

from __future__ import annotations

from typing import Any

import torch

from xf_core.errors import XfConfigError
from xf_load.attention import AttentionFn
from xf_load.cache import Cache
from xf_load.outputs import BaseModelOutput, Seq2SeqModelOutput

__all__ = ["cross_attend", "encode_decode", "shift_tokens_right"]


def shift_tokens_right(
    labels: torch.Tensor, *, pad_token_id: int | None, decoder_start_token_id: int | None
) -> torch.Tensor:
    """The decoder inputs for ``labels`` (B, T): ``decoder_start_token_id`` then the labels but the last, with
    the ignored label -100 replaced by the pad id (teacher forcing)."""
    if decoder_start_token_id is None:
        raise XfConfigError(
            "decoder_start_token_id is not set, so the decoder inputs cannot be built from labels; set it in "
            "config.json (T5 uses the pad id, 0) or pass decoder_input_ids.",
            key="decoder_start_token_id",
        )
    if pad_token_id is None:
        raise XfConfigError(
            "pad_token_id is not set, so ignored labels (-100) cannot become decoder inputs; set it in config.json.",
            key="pad_token_id",
        )
    shifted = labels.new_zeros(labels.shape)
    shifted[..., 1:] = labels[..., :-1]
    shifted[..., 0] = decoder_start_token_id
    return shifted.masked_fill(shifted == -100, pad_token_id)


def encode_decode(
    model: Any,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    decoder_input_ids: torch.Tensor | None,
    decoder_attention_mask: torch.Tensor | None,
    encoder_outputs: BaseModelOutput | tuple[torch.Tensor, ...] | None,
    past_key_values: Cache | None,
    inputs_embeds: torch.Tensor | None,
    decoder_inputs_embeds: torch.Tensor | None,
    use_cache: bool | None,
    output_hidden_states: bool,
    cache_position: torch.Tensor | None,
) -> Seq2SeqModelOutput:
    """Run the encoder (unless its output is given), then the decoder over it."""
    if encoder_outputs is None:
        encoder_outputs = model.encoder(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states,
        )
    elif not isinstance(encoder_outputs, BaseModelOutput):
        encoder_outputs = BaseModelOutput(last_hidden_state=encoder_outputs[0])
    enc = encoder_outputs.last_hidden_state
    dec = model.decoder(
        decoder_input_ids,
        attention_mask=decoder_attention_mask,
        encoder_hidden_states=enc,
        encoder_attention_mask=attention_mask,
        inputs_embeds=decoder_inputs_embeds,
        past_key_values=past_key_values,
        use_cache=use_cache,
        cache_position=cache_position,
        output_hidden_states=output_hidden_states,
    )
    return Seq2SeqModelOutput(
        last_hidden_state=dec.last_hidden_state,
        past_key_values=dec.past_key_values,
        decoder_hidden_states=dec.hidden_states,
        encoder_last_hidden_state=enc,
        encoder_hidden_states=encoder_outputs.hidden_states,
    )


def cross_attend(
    attend: AttentionFn,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    **kwargs: Any,
) -> torch.Tensor:
    """Cross-attention where each encoder row may serve several consecutive decoder rows.

    ``q`` is ``(R, nh, T, hs)``; ``k``, ``v`` ``(P, nh, S, hs)`` with ``R = P * g``: decoder rows
    ``i * g .. i * g + g - 1`` read encoder row ``i`` (generate's layout: each prompt repeated for its beams or
    samples). ``mask`` is ``(P, 1, 1 or T, S)`` or ``None``. The ``g`` rows of a prompt become ``g * T`` queries of
    one attention, so the encoder keys and values are projected, stored and read once per prompt, not once per
    beam. Returns ``(R, T, nh, hs)`` as ``attend`` does.
    """
    R, nh, T, hs = q.shape
    P = k.shape[0]
    if R == P:
        return attend(q, k, v, mask, **kwargs)
    g = R // P
    q = q.view(P, g, nh, T, hs).transpose(1, 2).reshape(P, nh, g * T, hs)
    if mask is not None and mask.shape[-2] > 1:
        mask = mask.repeat(1, 1, g, 1)  # query g_i * T + t sees what query t sees
    y = attend(q, k, v, mask, **kwargs)  # (P, g * T, nh, hs)
    return y.reshape(R, T, nh, hs)
