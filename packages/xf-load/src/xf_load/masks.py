"""Attention masks: a 2D padding mask (B, S) -> a 4D boolean mask (B, 1, T, S) for the attention functions.

One rule covers no cache, a DynamicCache and a StaticCache: key slot ``j`` is visible to query ``i`` iff
``j <= cache_position[i]`` (causal), ``j > cache_position[i] - sliding_window`` (if a window is set), and the
padding mask is 1 at ``j``. ``cache_position`` holds the absolute positions of the T queries; ``kv_length``
is how many key slots the attention sees (``cache.kv_length(T)``).

The masks are boolean, True = visible, as transformers passes them to SDPA (a query that sees no key, e.g. a
left-padding position, then gets a zero output there; eager attention gives it a uniform average, as in
transformers). ``causal_mask`` returns None when plain causal attention (``is_causal=True`` in SDPA) or no
mask at all is exactly right, which lets SDPA pick its fastest kernel.

Whether a padding mask hides anything is a question about the data; while ``torch.export`` or
``torch.compile`` traces, it is not asked (the mask is always built, which gives the same outputs), so one
traced graph serves every batch, padded or not.
"""

from __future__ import annotations

import torch

__all__ = ["causal_mask", "padding_mask"]


def _nothing_padded(attention_mask: torch.Tensor) -> bool:
    """True when every position of the 2D mask is visible; False, without looking, while tracing."""
    if torch.compiler.is_compiling():
        return False
    return bool(attention_mask.all())


def causal_mask(
    attention_mask: torch.Tensor | None,
    cache_position: torch.Tensor,
    kv_length: int,
    *,
    sliding_window: int | None = None,
    allow_none: bool = True,
) -> torch.Tensor | None:
    """The (B or 1, 1, T, kv_length) boolean mask for causal attention, or None when none is needed.

    None means: no padding, no window that hides anything, and the queries are the last T of the
    ``kv_length`` keys with either T == kv_length (use ``is_causal``) or T == 1 (see everything). Pass
    ``allow_none=False`` for caches whose slots are not filled in order (a static cache).
    """
    T = cache_position.shape[0]
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask  # a prepared 4D mask is used as given
    if allow_none and (attention_mask is None or _nothing_padded(attention_mask)):
        window_hides = sliding_window is not None and kv_length > sliding_window
        if not window_hides and (kv_length == T or T == 1):
            return None
    kv = torch.arange(kv_length, device=cache_position.device)
    visible = kv[None, :] <= cache_position[:, None]  # (T, S)
    if sliding_window is not None:
        visible = visible & (kv[None, :] > cache_position[:, None] - sliding_window)
    visible = visible[None, None]  # (1, 1, T, S)
    if attention_mask is not None:
        pad = attention_mask[:, None, None, :kv_length].to(torch.bool)  # (B, 1, 1, S)
        if pad.shape[-1] < kv_length:  # a static cache longer than the mask: the tail slots are unused
            extra = kv_length - pad.shape[-1]
            pad = torch.nn.functional.pad(pad, (0, extra), value=False)
        visible = visible & pad
    return visible


def padding_mask(
    attention_mask: torch.Tensor | None, *, query_length: int | None = None
) -> torch.Tensor | None:
    """Bidirectional (encoder) mask: (B, S) of 1/0 -> (B, 1, T, S) boolean, or None when nothing is padded."""
    if attention_mask is None:
        return None
    if attention_mask.dim() == 4:
        return attention_mask
    if _nothing_padded(attention_mask):
        return None
    B, S = attention_mask.shape
    return attention_mask[:, None, None, :].to(torch.bool).expand(B, 1, query_length or S, S)
