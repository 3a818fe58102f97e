"""A tiny causal LM that follows xf's decoder contract, for testing generation without a model family.

Learned absolute positions (so left padding only works when generate passes position_ids), a KV cache
through ``cache.update``, an additive causal + padding mask from ``cache_position`` and ``kv_length``
(no host syncs, so ``torch.compile`` can capture a decode step).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from xf_load.cache import DynamicCache
from xf_load.generation import GenerationMixin
from xf_load.outputs import CausalLMOutput


class ToyConfig:
    def __init__(
        self,
        vocab_size: int = 97,
        hidden_size: int = 32,
        num_layers: int = 2,
        num_heads: int = 4,
        max_position_embeddings: int = 128,
        eos_token_id=None,
        pad_token_id=None,
        bos_token_id=None,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_layers
        self.num_attention_heads = num_heads
        self.max_position_embeddings = max_position_embeddings
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.bos_token_id = bos_token_id

    def to_dict(self):
        return dict(vars(self))


class ToyBlock(nn.Module):
    def __init__(self, config: ToyConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.nh = config.num_attention_heads
        self.norm1 = nn.LayerNorm(config.hidden_size)
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm2 = nn.LayerNorm(config.hidden_size)
        self.mlp = nn.Sequential(
            nn.Linear(config.hidden_size, 64), nn.GELU(), nn.Linear(64, config.hidden_size)
        )

    def forward(self, x, mask, cache, cache_position):
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.nh, C // self.nh).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx, cache_position)
        y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.mlp(self.norm2(x))


class ToyCausalLM(GenerationMixin, nn.Module):
    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.generation_config = None
        self.tok = nn.Embedding(config.vocab_size, config.hidden_size)
        self.pos = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.blocks = nn.ModuleList(ToyBlock(config, i) for i in range(config.num_hidden_layers))
        self.norm = nn.LayerNorm(config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)

    @property
    def device(self):
        return self.head.weight.device

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        position_ids=None,
        past_key_values=None,
        use_cache=None,
        inputs_embeds=None,
        labels=None,
        cache_position=None,
        logits_to_keep=0,
        **kwargs,
    ):
        B, T = input_ids.shape
        cache = past_key_values
        if use_cache and cache is None:
            cache = DynamicCache()
        past = cache.get_seq_length() if cache is not None else 0
        if cache_position is None:
            cache_position = torch.arange(past, past + T, device=input_ids.device)
        if position_ids is None:
            position_ids = cache_position[None, :].expand(B, T)
        kv_len = cache.kv_length(T) if cache is not None else T
        kv = torch.arange(kv_len, device=input_ids.device)
        visible = (kv[None, :] <= cache_position[:, None])[None, None]  # (1, 1, T, S)
        if attention_mask is not None:
            pad = attention_mask[:, :kv_len].bool()
            if pad.shape[-1] < kv_len:
                pad = nn.functional.pad(pad, (0, kv_len - pad.shape[-1]), value=False)
            visible = visible & pad[:, None, None, :]
        dtype = self.head.weight.dtype
        mask = torch.where(visible, torch.zeros((), dtype=dtype), torch.finfo(dtype).min)
        x = self.tok(input_ids) + self.pos(position_ids)
        for block in self.blocks:
            x = block(x, mask, cache, cache_position)
        x = self.norm(x)
        if logits_to_keep:
            x = x[:, -logits_to_keep:]
        return CausalLMOutput(logits=self.head(x), past_key_values=cache if use_cache else None)


def make_toy(seed: int = 0, **config_kwargs) -> ToyCausalLM:
    torch.manual_seed(seed)
    model = ToyCausalLM(ToyConfig(**config_kwargs)).eval()
    with torch.no_grad():  # sharper distributions than the default init: greedy paths are less tie-prone
        model.head.weight.mul_(8.0)
    return model


def full_greedy(model: ToyCausalLM, ids: torch.Tensor, new_tokens: int) -> torch.Tensor:
    """Reference: argmax over a fresh full forward per step (no cache, no generate)."""
    with torch.no_grad():
        for _ in range(new_tokens):
            logits = model(input_ids=ids).logits[:, -1]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids


@pytest.fixture
def toy():
    return make_toy


@pytest.fixture
def greedy_reference():
    return full_greedy
