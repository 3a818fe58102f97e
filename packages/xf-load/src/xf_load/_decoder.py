"""The prologue every decoder family runs before its blocks: embeddings, cache, positions, masks; and the
``logits_to_keep`` selection after them. One copy, so the families cannot drift apart.

What :func:`decoder_prologue` checks and decides, in order:

* exactly one of ``input_ids`` and ``inputs_embeds`` is given, with at least one token;
* token ids lie in ``[0, vocab_size)`` (:func:`check_token_ids`: one min/max reduction). A caller that passes
  ``cache_position`` keeps its own books and checks its ids once itself: ``generate`` checks the prompt at its
  entry, so no decode step pays a host sync for it; nothing is checked while compiling;
* ``past_key_values`` is an :class:`~xf_load.cache.Cache` (transformers' legacy tuples are refused, naming
  the fix);
* ``use_cache`` defaults to ``config.use_cache``; under gradient checkpointing in training no cache is used
  (a recomputed block would write its keys and values twice), as in transformers;
* a :class:`~xf_load.cache.DynamicCache` is made when caching and none was passed;
* ``cache_position`` defaults to the positions after the cached ones, ``position_ids`` to ``cache_position``
  for every row;
* a family with a learned position table names its size's config field (``positions_key="n_positions"``):
  inputs that would run past the table are refused (RoPE families pass ``None``: no table to run off);
* one causal mask per distinct sliding window (``None`` = full attention), built once for all layers; masks
  may be ``None`` only when the cache fills its slots in order (not a static cache).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from xf_core.errors import XfValueError

from .cache import Cache, DynamicCache
from .errors import InputIdsError
from .masks import causal_mask

__all__ = ["DecoderInputs", "check_input_shape", "check_token_ids", "decoder_prologue", "keep_logits"]


@dataclass
class DecoderInputs:
    """What every block of one decoder forward shares."""

    inputs_embeds: torch.Tensor  # (B, T, H), before any position embedding
    cache: Cache | None  # what the blocks write to (None: no cache)
    use_cache: bool  # whether the forward returns the cache
    cache_position: torch.Tensor  # (T,) absolute positions of the new tokens in the cache
    position_ids: torch.Tensor  # (B, T) positions for RoPE / position embeddings
    masks: dict[int | None, torch.Tensor | None]  # sliding window (None = full) -> (B or 1, 1, T, S) mask

    @property
    def returned_cache(self) -> Cache | None:
        return self.cache if self.use_cache else None


def decoder_prologue(
    model: Any,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    *,
    embed: Callable[[torch.Tensor], torch.Tensor],
    attention_mask: torch.Tensor | None,
    position_ids: torch.Tensor | None,
    past_key_values: Any,
    use_cache: bool | None,
    cache_position: torch.Tensor | None,
    sliding_windows: Iterable[int | None] = (None,),
    positions_key: str | None = None,
) -> DecoderInputs:
    """Set up one forward of ``model`` (a base decoder: ``config.use_cache``, ``gradient_checkpointing``,
    ``training``). ``embed`` maps ids to ``(B, T, H)``; ``positions_key`` names the config field that holds the
    size of a learned position table, if the family has one. See the module docstring for the rules."""
    if (input_ids is None) == (inputs_embeds is None):
        raise XfValueError("pass exactly one of input_ids or inputs_embeds.")
    check_input_shape(input_ids, inputs_embeds)
    if input_ids is not None and cache_position is None:
        vocab_size = getattr(embed, "num_embeddings", None) or getattr(model.config, "vocab_size", None)
        check_token_ids(input_ids, vocab_size, owner=type(model).__name__)
    if past_key_values is not None and not isinstance(past_key_values, Cache):
        raise XfValueError(
            f"past_key_values is a {type(past_key_values).__name__}; pass an xf_load.cache.Cache (the "
            "past_key_values of an earlier output, or a DynamicCache()), not transformers' legacy tuples."
        )
    x = embed(input_ids) if inputs_embeds is None else inputs_embeds  # (B, T, H)
    B, T = x.shape[:2]

    use_cache = bool(model.config.use_cache if use_cache is None else use_cache)
    cache: Cache | None = past_key_values
    if model.gradient_checkpointing and model.training:
        use_cache, cache = False, None
    elif use_cache and cache is None:
        cache = DynamicCache()

    past = cache.get_seq_length() if cache is not None else 0
    if cache_position is None:
        limit = getattr(model.config, positions_key) if positions_key is not None else None
        if limit is not None and position_ids is None and past + T > limit:
            raise XfValueError(
                f"{past + T} positions ({past} cached + {T} new) exceed {positions_key}={limit}, the learned "
                f"position embeddings of {type(model).__name__}; truncate the input to {limit} tokens."
            )
        cache_position = torch.arange(past, past + T, device=x.device)
    if position_ids is None:
        position_ids = cache_position[None].expand(B, T)

    kv_length = cache.kv_length(T) if cache is not None else T
    allow_none = not (cache is not None and cache.is_static)
    masks = {
        window: causal_mask(
            attention_mask, cache_position, kv_length, sliding_window=window, allow_none=allow_none
        )
        for window in set(sliding_windows)
    }
    return DecoderInputs(x, cache, use_cache, cache_position, position_ids, masks)


def check_input_shape(input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> None:
    """Refuse inputs that are not ``(batch, length, ...)`` with at least one token (an empty sequence would
    otherwise fail in a reshape deep in the attention)."""
    given, name = (input_ids, "input_ids") if input_ids is not None else (inputs_embeds, "inputs_embeds")
    if given is not None and (given.dim() < 2 or given.shape[1] == 0):
        raise InputIdsError(
            f"{name} has shape {tuple(given.shape)}: a forward needs (batch, length) with at least one token; "
            "check that the tokenizer produced tokens for every text.",
            value=tuple(given.shape),
        )


def check_token_ids(
    ids: torch.Tensor,
    vocab_size: int | None,
    *,
    owner: str,
    name: str = "input_ids",
    limit_name: str = "vocab_size",
) -> None:
    """Refuse ids outside ``[0, vocab_size)`` (which ``nn.Embedding`` answers with a bare ``IndexError``)
    with an :class:`~xf_load.errors.InputIdsError` naming the id, where it is and the vocabulary size.

    One min/max reduction and one host sync; skipped without a ``vocab_size``, for meta tensors and while
    compiling or tracing (a data-dependent check would break the graph)."""
    if vocab_size is None or ids.numel() == 0 or ids.device.type == "meta":
        return
    if torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    low, high = torch.stack(torch.aminmax(ids)).tolist()
    if low >= 0 and high < vocab_size:
        return
    where = ((ids < 0) | (ids >= vocab_size)).nonzero()[0]
    value = int(ids[tuple(where.tolist())])
    raise InputIdsError(
        f"{name} holds token id {value} at index {tuple(where.tolist())}, outside the vocabulary of {owner} "
        f"({limit_name}={vocab_size}, so ids 0 to {vocab_size - 1}); encode the text with this model's "
        "tokenizer, or call resize_token_embeddings after adding tokens to it.",
        value=value,
        limit=vocab_size,
    )


def keep_logits(hidden: torch.Tensor, logits_to_keep: int | torch.Tensor) -> torch.Tensor:
    """The positions of ``hidden`` ``(B, T, H)`` the LM head runs on: all for 0, the last ``n`` for an int
    ``n``, or those at the indices of a 1-D tensor (transformers' ``logits_to_keep``)."""
    if isinstance(logits_to_keep, int):
        if logits_to_keep < 0:
            raise XfValueError(
                f"logits_to_keep={logits_to_keep}: pass 0 (all positions) or a positive count."
            )
        return hidden[:, -logits_to_keep:] if logits_to_keep else hidden
    if logits_to_keep.dim() != 1:
        raise XfValueError(
            f"logits_to_keep as a tensor must be 1-D sequence indices, got shape {tuple(logits_to_keep.shape)}."
        )
    return hidden[:, logits_to_keep.to(hidden.device)]
