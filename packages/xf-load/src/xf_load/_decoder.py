"""The prologue every decoder family runs before its blocks: embeddings, cache, positions, masks; and the
``logits_to_keep`` selection after them. One copy, so the families cannot drift apart.

What :func:`decoder_prologue` checks and decides, in order:

* exactly one of ``input_ids`` and ``inputs_embeds`` is given;
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
from .masks import causal_mask

__all__ = ["DecoderInputs", "decoder_prologue", "keep_logits"]


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
