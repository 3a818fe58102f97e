"""Key/value caches for decoder models.

The contract every decoder attention layer follows::

    k, v = cache.update(k, v, layer_idx, cache_position)   # k, v: (B, n_kv_heads, T_new, head_dim)
    # returns the keys/values to attend over: (B, n_kv_heads, T_kv, head_dim)

``cache_position`` (1-D LongTensor of length T_new) holds the absolute positions of the new tokens.
``DynamicCache`` grows by concatenation; ``StaticCache`` (generation) preallocates ``max_cache_len`` slots and
writes in place, so its ``T_kv`` is always ``max_cache_len`` and the attention mask hides unused slots.
``get_seq_length()`` is the number of positions already cached; ``kv_length(T_new)`` is the ``T_kv`` the
next ``update`` will return (what a mask must cover).
"""

from __future__ import annotations

import torch

__all__ = ["Cache", "DynamicCache"]


class Cache:
    """Base class: what a model may ask of any cache."""

    is_static = False

    def update(
        self,
        key: torch.Tensor,
        value: torch.Tensor,
        layer_idx: int,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def get_seq_length(self, layer_idx: int = 0) -> int:
        raise NotImplementedError

    def kv_length(self, new_tokens: int, layer_idx: int = 0) -> int:
        return self.get_seq_length(layer_idx) + new_tokens


class DynamicCache(Cache):
    """A cache that grows with every step: one (keys, values) pair of tensors per layer."""

    def __init__(self) -> None:
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.keys)

    def update(
        self,
        key: torch.Tensor,
        value: torch.Tensor,
        layer_idx: int,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx == len(self.keys):
            self.keys.append(key)
            self.values.append(value)
        elif layer_idx < len(self.keys):
            self.keys[layer_idx] = torch.cat([self.keys[layer_idx], key], dim=-2)
            self.values[layer_idx] = torch.cat([self.values[layer_idx], value], dim=-2)
        else:
            raise IndexError(f"layer {layer_idx} updated before layer {len(self.keys)}")
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.keys[layer_idx].shape[-2] if layer_idx < len(self.keys) else 0

    def reorder(self, beam_idx: torch.Tensor) -> None:
        """Select batch rows (beam search): row i becomes old row ``beam_idx[i]``."""
        for i in range(len(self.keys)):
            self.keys[i] = self.keys[i].index_select(0, beam_idx.to(self.keys[i].device))
            self.values[i] = self.values[i].index_select(0, beam_idx.to(self.values[i].device))

    def crop(self, length: int) -> None:
        """Keep only the first ``length`` cached positions."""
        for i in range(len(self.keys)):
            self.keys[i] = self.keys[i][..., :length, :]
            self.values[i] = self.values[i][..., :length, :]
