"""T5's building blocks: the RMS norm, relative position buckets, attention (self- and cross-), the feed-forward
variants and the block that chains them. The models that stack them are in :mod:`xf_load.models.t5`, which
re-exports every name here."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from xf_load.activations import Activation, get_activation
from xf_load.attention import AttentionFn, get_attention
from xf_load.cache import Cache, EncoderDecoderCache
from xf_load.models._seq2seq import cross_attend

if TYPE_CHECKING:
    from xf_load.models.t5 import T5Config

__all__ = [
    "T5Attention",
    "T5Block",
    "T5DenseActDense",
    "T5DenseGatedActDense",
    "T5LayerCrossAttention",
    "T5LayerFF",
    "T5LayerNorm",
    "T5LayerSelfAttention",
    "relative_position_bucket",
]


class T5LayerNorm(nn.Module):
    """RMS norm, no mean and no bias; the variance in float32."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight: nn.Parameter = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.to(torch.float32).pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.variance_epsilon)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.to(self.weight.dtype)
        return self.weight * x


def _clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.float16:
        return x
    limit = torch.finfo(x.dtype).max - 1000
    return x.clamp(min=-limit, max=limit)


def relative_position_bucket(
    relative_position: torch.Tensor, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """The bucket of each distance ``key - query``: half the buckets are exact small distances, the rest grow
    logarithmically up to ``max_distance`` (farther ones share the last bucket). Bidirectional buckets give
    each direction half."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).to(torch.long) * num_buckets
        distance = relative_position.abs()
    else:
        distance = -torch.clamp(relative_position, max=0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    large = max_exact + (
        torch.log(distance.float() / max_exact)
        / math.log(max_distance / max_exact)
        * (num_buckets - max_exact)
    ).to(torch.long)
    large = torch.clamp(large, max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


class T5Attention(nn.Module):
    """Multi-head attention without scaling or biases; self-attention (with the stack's position bias) or
    cross-attention over the encoder output (keys and values cached once per generation)."""

    def __init__(
        self, config: T5Config, *, is_decoder: bool, has_relative_attention_bias: bool, layer_idx: int
    ) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        self.layer_idx = layer_idx
        self.n_heads: int = config.num_heads
        self.d_kv: int = config.d_kv
        inner = config.num_heads * config.d_kv
        self.q: nn.Linear = nn.Linear(config.d_model, inner, bias=False)
        self.k: nn.Linear = nn.Linear(config.d_model, inner, bias=False)
        self.v: nn.Linear = nn.Linear(config.d_model, inner, bias=False)
        self.o: nn.Linear = nn.Linear(inner, config.d_model, bias=False)
        self.num_buckets: int = config.relative_attention_num_buckets
        self.max_distance: int = config.relative_attention_max_distance
        self.dropout: float = config.dropout_rate
        self.attend: AttentionFn = get_attention(config.attn_implementation)
        if has_relative_attention_bias:
            self.relative_attention_bias: nn.Embedding = nn.Embedding(self.num_buckets, config.num_heads)
            # The bucket of each distance, looked up instead of recomputed at every decoding step.
            self.register_buffer("relative_buckets", torch.empty(0, dtype=torch.long), persistent=False)
            self.reset_buffers()

    def reset_buffers(self) -> None:
        """(Re)compute ``relative_buckets``: the bucket of each distance ``-D .. D`` with ``D`` past both the
        exact buckets and ``max_distance``, so that every farther distance falls in the bucket of ``±D``. Left
        empty for a ``max_distance`` within the exact buckets (the logarithmic buckets are then not monotonic:
        :meth:`compute_bias` computes each bucket). Computed on the CPU, also while the model is built on
        ``meta`` (it is not in the checkpoint)."""
        device = self.relative_buckets.device
        device = torch.device("cpu") if device.type == "meta" else device
        with torch.device("cpu"):
            table = torch.empty(0, dtype=torch.long)
            if self.max_distance > self.num_buckets // 2:
                D = max(self.max_distance, self.num_buckets)
                table = relative_position_bucket(
                    torch.arange(-D, D + 1),
                    bidirectional=not self.is_decoder,
                    num_buckets=self.num_buckets,
                    max_distance=self.max_distance,
                )
        self.relative_buckets: torch.Tensor = table.to(device)

    def compute_bias(self, query_positions: torch.Tensor, key_length: int) -> torch.Tensor:
        """(1, nh, T, S) bias for queries at ``query_positions`` (T,) over keys 0 .. key_length - 1."""
        keys = torch.arange(key_length, dtype=torch.long, device=query_positions.device)
        relative = keys[None, :] - query_positions[:, None]  # (T, S)
        table = self.relative_buckets
        if table.numel():
            D = table.numel() // 2
            buckets = table[relative.clamp(-D, D) + D]
        else:
            buckets = relative_position_bucket(
                relative,
                bidirectional=not self.is_decoder,
                num_buckets=self.num_buckets,
                max_distance=self.max_distance,
            )
        return self.relative_attention_bias(buckets).permute(2, 0, 1)[None]  # (1, nh, T, S)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, S, _ = x.shape
        return x.view(B, S, self.n_heads, self.d_kv).transpose(1, 2)  # (B, nh, S, hs)

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        cache: Cache | None,
        cache_position: torch.Tensor | None = None,
        encoder_states: torch.Tensor | None = None,
    ) -> torch.Tensor:
        B, T, _ = x.shape
        q = self._heads(self.q(x))  # (B, nh, T, hs)
        if encoder_states is None:
            k, v = self._heads(self.k(x)), self._heads(self.v(x))
            if cache is not None:
                k, v = cache.update(k, v, self.layer_idx, cache_position)  # (B, nh, S, hs)
        elif isinstance(cache, EncoderDecoderCache):
            k, v = cache.cross_attention(
                self.layer_idx,
                lambda: (self._heads(self.k(encoder_states)), self._heads(self.v(encoder_states))),
            )
        else:
            k, v = self._heads(self.k(encoder_states)), self._heads(self.v(encoder_states))
        if bias is not None and bias.dtype != q.dtype and bias.dtype != torch.bool:
            bias = bias.to(q.dtype)
        y = cross_attend(self.attend, q, k, v, bias, scale=1.0, dropout=self.dropout, training=self.training)
        return self.o(y.reshape(B, T, self.n_heads * self.d_kv))  # (B, T, nh, hs) -> (B, T, C)


class T5DenseActDense(nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.wi: nn.Linear = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo: nn.Linear = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout: nn.Dropout = nn.Dropout(config.dropout_rate)
        self.act: Activation = get_activation(config.dense_act_fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.wi(x)))
        return self.wo(h.to(self.wo.weight.dtype) if self.wo.weight.dtype != torch.int8 else h)


class T5DenseGatedActDense(nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.wi_0: nn.Linear = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1: nn.Linear = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo: nn.Linear = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout: nn.Dropout = nn.Dropout(config.dropout_rate)
        self.act: Activation = get_activation(config.dense_act_fn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dropout(self.act(self.wi_0(x)) * self.wi_1(x))
        return self.wo(h.to(self.wo.weight.dtype) if self.wo.weight.dtype != torch.int8 else h)


class T5LayerFF(nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.DenseReluDense: T5DenseGatedActDense | T5DenseActDense = (
            T5DenseGatedActDense(config) if config.is_gated_act else T5DenseActDense(config)
        )
        self.layer_norm: T5LayerNorm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout: nn.Dropout = nn.Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _clamp_fp16(x + self.dropout(self.DenseReluDense(self.layer_norm(x))))


class T5LayerSelfAttention(nn.Module):
    def __init__(self, config: T5Config, *, is_decoder: bool, has_bias: bool, layer_idx: int) -> None:
        super().__init__()
        self.SelfAttention: T5Attention = T5Attention(
            config, is_decoder=is_decoder, has_relative_attention_bias=has_bias, layer_idx=layer_idx
        )
        self.layer_norm: T5LayerNorm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout: nn.Dropout = nn.Dropout(config.dropout_rate)

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        cache: Cache | None,
        cache_position: torch.Tensor | None,
    ) -> torch.Tensor:
        return _clamp_fp16(
            x + self.dropout(self.SelfAttention(self.layer_norm(x), bias, cache, cache_position))
        )


class T5LayerCrossAttention(nn.Module):
    def __init__(self, config: T5Config, *, layer_idx: int) -> None:
        super().__init__()
        self.EncDecAttention: T5Attention = T5Attention(
            config, is_decoder=True, has_relative_attention_bias=False, layer_idx=layer_idx
        )
        self.layer_norm: T5LayerNorm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout: nn.Dropout = nn.Dropout(config.dropout_rate)

    def forward(
        self, x: torch.Tensor, encoder_states: torch.Tensor, mask: torch.Tensor | None, cache: Cache | None
    ) -> torch.Tensor:
        y = self.EncDecAttention(self.layer_norm(x), mask, cache, encoder_states=encoder_states)
        return _clamp_fp16(x + self.dropout(y))


class T5Block(nn.Module):
    """``layer`` = [self-attention, (cross-attention,) feed-forward]."""

    def __init__(self, config: T5Config, *, is_decoder: bool, layer_idx: int) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        layers: list[nn.Module] = [
            T5LayerSelfAttention(config, is_decoder=is_decoder, has_bias=layer_idx == 0, layer_idx=layer_idx)
        ]
        if is_decoder:
            layers.append(T5LayerCrossAttention(config, layer_idx=layer_idx))
        layers.append(T5LayerFF(config))
        self.layer: nn.ModuleList = nn.ModuleList(layers)

    def forward(
        self,
        x: torch.Tensor,
        bias: torch.Tensor | None,
        cache: Cache | None,
        cache_position: torch.Tensor | None,
        encoder_states: torch.Tensor | None,
        encoder_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        x = self.layer[0](x, bias, cache, cache_position)
        if self.is_decoder:
            assert encoder_states is not None
            x = self.layer[1](x, encoder_states, encoder_mask, cache)
        return self.layer[-1](x)
