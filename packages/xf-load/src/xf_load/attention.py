"""Attention as a registry of plain functions: ``ATTENTION = {"eager": ..., "sdpa": ...}``.

Every function takes q (B, nh, T, hs), k and v (B, nkv, S, hs) with ``nh`` a multiple of ``nkv`` (grouped
query attention), a mask (B or 1, 1, T, S) or None, and returns (B, T, nh, hs). A boolean mask is True where
a query may attend; a float mask is added to the scores. With no mask,
``is_causal=True`` asks for plain causal attention (T == S).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from xf_core.errors import XfConfigError

__all__ = ["ATTENTION", "eager_attention", "get_attention", "repeat_kv", "sdpa_attention"]

AttentionFn = Callable[..., torch.Tensor]


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """(B, nkv, S, hs) -> (B, nkv * n_rep, S, hs), each kv head repeated for its group of query heads."""
    if n_rep == 1:
        return x
    B, nkv, S, hs = x.shape
    return x[:, :, None].expand(B, nkv, n_rep, S, hs).reshape(B, nkv * n_rep, S, hs)


def eager_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    scale: float,
    dropout: float = 0.0,
    is_causal: bool = False,
    training: bool = False,
) -> torch.Tensor:
    """softmax(q·kᵀ·scale, hidden keys at the dtype's minimum)·v, the softmax in float32 (as transformers)."""
    n_rep = q.shape[1] // k.shape[1]
    k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
    scores = torch.matmul(q, k.transpose(2, 3)) * scale  # (B, nh, T, S)
    if mask is not None and mask.dtype == torch.bool:
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    elif mask is not None:
        scores = scores + mask
    elif is_causal and q.shape[2] > 1:  # T == S; a single query sees every key
        T, S = scores.shape[-2:]
        hidden = torch.ones(T, S, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(hidden, torch.finfo(scores.dtype).min)
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    probs = F.dropout(probs, p=dropout, training=training)
    return torch.matmul(probs, v).transpose(1, 2).contiguous()  # (B, T, nh, hs)


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    scale: float,
    dropout: float = 0.0,
    is_causal: bool = False,
    training: bool = False,
) -> torch.Tensor:
    """torch's fused ``scaled_dot_product_attention``."""
    n_rep = q.shape[1] // k.shape[1]
    gqa = n_rep > 1 and mask is None
    if not gqa:
        k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
    if mask is not None and mask.dtype not in (torch.bool, q.dtype):
        mask = mask.to(q.dtype)
    out = F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=mask,
        dropout_p=dropout if training else 0.0,
        is_causal=is_causal and mask is None and q.shape[2] > 1,
        scale=scale,
        enable_gqa=gqa,
    )
    return out.transpose(1, 2).contiguous()  # (B, T, nh, hs)


ATTENTION: dict[str, AttentionFn] = {"eager": eager_attention, "sdpa": sdpa_attention}


def get_attention(name: str | None) -> AttentionFn:
    """The attention function called ``name`` (None means "sdpa")."""
    try:
        return ATTENTION[name or "sdpa"]
    except KeyError:
        raise XfConfigError(
            f"attn_implementation={name!r} is not supported; supported: {', '.join(ATTENTION)}.",
            key="attn_implementation",
        ) from None
